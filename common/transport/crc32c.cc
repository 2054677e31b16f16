// CRC32C, two ways: the SSE4.2 instruction (three interleaved streams, so
// the 3-cycle latency of `crc32` is hidden) and a portable slicing-by-8 table.
#include "common/transport/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace moerl {
namespace crc32c_internal {
namespace {

constexpr uint32_t kPolyReflected = 0x82F63B78u;

// table[k][b]: CRC of byte b followed by k zero bytes.
struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  constexpr Tables() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1u) ? kPolyReflected : 0u);
      t[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; ++b) {
      for (int k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
    }
  }
};

constexpr Tables kTables;

inline uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));  // x86 and every target we build for is little-endian
  return v;
}

}  // namespace

uint32_t ExtendSoftware(uint32_t crc, const void* data, size_t size) {
  const auto& t = kTables.t;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  while (size >= 8) {
    const uint64_t v = LoadLe64(p) ^ c;
    c = t[7][v & 0xFF] ^ t[6][(v >> 8) & 0xFF] ^ t[5][(v >> 16) & 0xFF] ^
        t[4][(v >> 24) & 0xFF] ^ t[3][(v >> 32) & 0xFF] ^ t[2][(v >> 40) & 0xFF] ^
        t[1][(v >> 48) & 0xFF] ^ t[0][v >> 56];
    p += 8;
    size -= 8;
  }
  while (size-- > 0) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

#if defined(__x86_64__)

namespace {

// Multiplication by x^(8*n) in GF(2)[x]/P, used to combine the three
// streams: shift(crc, n) is the CRC state after feeding n zero bytes.
uint32_t ShiftSoftware(uint32_t state, size_t zero_bytes) {
  // Feed zero bytes through the table; only used with a fixed block size, so
  // precomputed per block below.
  const auto& t = kTables.t;
  for (size_t i = 0; i < zero_bytes; ++i) state = (state >> 8) ^ t[0][state & 0xFF];
  return state;
}

// Per-bit lookup for "state advanced by kBlock zero bytes": linear in state,
// so 4 tables of 256 entries (one per state byte) give it in 4 lookups.
constexpr size_t kBlock = 1024;  // bytes per stream per round

struct ShiftTables {
  std::array<std::array<uint32_t, 256>, 4> t{};
};

const ShiftTables& BlockShift() {
  static const ShiftTables tables = [] {
    ShiftTables s;
    for (int k = 0; k < 4; ++k) {
      for (uint32_t b = 0; b < 256; ++b) s.t[k][b] = ShiftSoftware(b << (8 * k), kBlock);
    }
    return s;
  }();
  return tables;
}

inline uint32_t Shift(const ShiftTables& s, uint32_t state) {
  return s.t[0][state & 0xFF] ^ s.t[1][(state >> 8) & 0xFF] ^ s.t[2][(state >> 16) & 0xFF] ^
         s.t[3][state >> 24];
}

}  // namespace

__attribute__((target("sse4.2"))) uint32_t ExtendHardware(uint32_t crc, const void* data,
                                                          size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t c0 = static_cast<uint32_t>(~crc);
  if (size >= 3 * kBlock) {
    const ShiftTables& shift = BlockShift();
    while (size >= 3 * kBlock) {
      uint64_t c1 = 0, c2 = 0;
      for (size_t i = 0; i < kBlock; i += 8) {
        c0 = _mm_crc32_u64(c0, LoadLe64(p + i));
        c1 = _mm_crc32_u64(c1, LoadLe64(p + kBlock + i));
        c2 = _mm_crc32_u64(c2, LoadLe64(p + 2 * kBlock + i));
      }
      // state(a || b) = shift(state(a), |b|) xor state_from_zero(b).
      uint32_t s = Shift(shift, static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
      s = Shift(shift, s) ^ static_cast<uint32_t>(c2);
      c0 = s;
      p += 3 * kBlock;
      size -= 3 * kBlock;
    }
  }
  while (size >= 8) {
    c0 = _mm_crc32_u64(c0, LoadLe64(p));
    p += 8;
    size -= 8;
  }
  uint32_t c = static_cast<uint32_t>(c0);
  while (size-- > 0) c = _mm_crc32_u8(c, *p++);
  return ~c;
}

uint32_t CopyHardware(void* dst, const void* src, size_t size) {
  // Copy a block with the C library's tuned memcpy, then checksum it while
  // it is still in L1: the source is read from memory once.
  constexpr size_t kChunk = 3 * kBlock;
  const char* p = static_cast<const char*>(src);
  char* q = static_cast<char*>(dst);
  uint32_t crc = 0;
  while (size > 0) {
    const size_t n = size < kChunk ? size : kChunk;
    std::memcpy(q, p, n);
    crc = ExtendHardware(crc, q, n);
    p += n;
    q += n;
    size -= n;
  }
  return crc;
}

bool HardwareAvailable() {
  static const bool available = __builtin_cpu_supports("sse4.2");
  return available;
}

#else

uint32_t CopyHardware(void* dst, const void* src, size_t size) {
  std::memcpy(dst, src, size);
  return ExtendSoftware(0, dst, size);
}

uint32_t ExtendHardware(uint32_t crc, const void* data, size_t size) {
  return ExtendSoftware(crc, data, size);
}
bool HardwareAvailable() { return false; }

#endif

}  // namespace crc32c_internal

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size) {
  if (crc32c_internal::HardwareAvailable()) {
    return crc32c_internal::ExtendHardware(crc, data, size);
  }
  return crc32c_internal::ExtendSoftware(crc, data, size);
}

uint32_t Crc32cCopy(void* dst, const void* src, size_t size) {
  if (crc32c_internal::HardwareAvailable()) return crc32c_internal::CopyHardware(dst, src, size);
  std::memcpy(dst, src, size);
  return crc32c_internal::ExtendSoftware(0, dst, size);
}

}  // namespace moerl
