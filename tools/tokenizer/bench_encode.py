#!/usr/bin/env python3
"""Encode throughput of //common/tokenizer vs Hugging Face `tokenizers`, in the
same run, on all GSM8K test questions and answers, one thread.

    bazel build -c opt //common/tokenizer:tokenizer_benchmark
    python3 tools/tokenizer/bench_encode.py --shared third_party

HF is timed three ways: `encode` per text (single), and `encode_batch` over
all texts with parallelism off (batch, 1 thread) and on (batch, all cores; for
reference only). Each figure is the best of --rounds passes after a warm-up
pass, like the C++ side. Also checks that both produce the same ids (FNV-1a64
over all ids) and prints the ratios.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import time


def fnv_ids(all_ids):
    h = 0xCBF29CE484222325
    for ids in all_ids:
        for b in struct.pack("<%di" % len(ids), *ids):
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def best_of(rounds, fn):
    fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="third_party")
    ap.add_argument("--binary", default="bazel-bin/common/tokenizer/tokenizer_benchmark")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--small", action="store_true",
                    help="benchmark the small embedded tokenizer instead of Qwen3's")
    args = ap.parse_args()

    gsm8k = os.path.join(args.shared, "data/gsm8k/test.jsonl")
    qwen_dir = os.path.join(args.shared, "data/qwen-tokenizer")
    small = "common/tokenizer/data/moerl-gsm8k-bpe.json"
    texts = []
    with open(gsm8k, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                texts += [row["question"], row["answer"]]
    nbytes = sum(len(t.encode("utf-8")) for t in texts)

    flag = "--tokenizer_json=" + small if args.small else "--tokenizer_dir=" + qwen_dir
    out = subprocess.run([args.binary, flag, "--gsm8k=" + gsm8k, "--rounds=%d" % args.rounds],
                         check=True, capture_output=True, text=True).stdout
    cpp = json.loads(out.strip().splitlines()[-1])

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer
    if args.small:
        tok = Tokenizer.from_file(small)
    else:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(qwen_dir).backend_tokenizer
    hf_ids = [e.ids for e in tok.encode_batch(texts)]
    parity = fnv_ids(hf_ids) == cpp["ids_fnv"] and sum(map(len, hf_ids)) == cpp["ids"]

    single = best_of(args.rounds, lambda: [tok.encode(t) for t in texts])
    batch1 = best_of(args.rounds, lambda: tok.encode_batch(texts))
    # Parallel batch: a fresh process, since the setting is read once.
    code = ("import os,json,time,sys;from tokenizers import Tokenizer;" +
            ("tok=Tokenizer.from_file(%r)" % small if args.small else
             "from transformers import AutoTokenizer;tok=AutoTokenizer.from_pretrained(%r).backend_tokenizer" % qwen_dir) +
            ";texts=json.load(sys.stdin);tok.encode_batch(texts);b=9e9\n"
            "for _ in range(%d):\n t=time.perf_counter();tok.encode_batch(texts);b=min(b,time.perf_counter()-t)\n"
            "print(b)" % args.rounds)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="true")
    batch_par = float(subprocess.run([sys.executable, "-c", code], input=json.dumps(texts), env=env,
                                     check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])

    mb = nbytes / 1e6
    print("texts %d, %.2f MB, %d ids, parity %s" % (len(texts), mb, cpp["ids"], "OK" if parity else "MISMATCH"))
    print("%-34s %8.2f MB/s  load %.2f s" % ("moerl (C++, 1 thread)", cpp["mb_per_s"], cpp["load_s"]))
    for name, secs in (("HF encode, single", single), ("HF encode_batch, 1 thread", batch1),
                       ("HF encode_batch, %d cores" % os.cpu_count(), batch_par)):
        print("%-34s %8.2f MB/s  moerl/HF = %.2fx" % (name, mb / secs, cpp["mb_per_s"] / (mb / secs)))
    if not parity:
        sys.exit(1)


if __name__ == "__main__":
    main()
