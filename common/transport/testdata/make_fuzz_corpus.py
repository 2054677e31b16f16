#!/usr/bin/env python3
"""Writes the seed corpus of //common/transport:record_reader_fuzz.

Run from the repository root:
  python3 common/transport/testdata/make_fuzz_corpus.py
The layout is the one in common/transport/record_io.h.
"""
import os
import struct


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def record_file(records):
    head = b"MOERLREC" + struct.pack("<I", 1)
    out = head + struct.pack("<I", crc32c(head))
    for r in records:
        length = struct.pack("<I", len(r))
        out += length + struct.pack("<I", crc32c(length)) + r + struct.pack("<I", crc32c(r))
    end = struct.pack("<I", 0xFFFFFFFF)
    count = struct.pack("<Q", len(records))
    out += end + struct.pack("<I", crc32c(end)) + count + struct.pack("<I", crc32c(count))
    return out


def main():
    assert crc32c(b"123456789") == 0xE3069283
    folder = os.path.join(os.path.dirname(__file__), "fuzz", "record_reader")
    os.makedirs(folder, exist_ok=True)
    seeds = {
        "empty.rec": record_file([]),
        "one.rec": record_file([b"hello"]),
        "several.rec": record_file([b"", b"a", b"x" * 40, bytes(range(256))]),
        "truncated.rec": record_file([b"abc", b"defgh"])[:-25],
    }
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
