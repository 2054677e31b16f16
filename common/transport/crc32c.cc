// CRC32C, three ways: carry-less multiplication folding (PCLMULQDQ) for
// long inputs, the SSE4.2 instruction (three interleaved streams, so the
// 3-cycle latency of `crc32` is hidden), and a portable slicing-by-8 table.
#include "common/transport/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <wmmintrin.h>
#include <smmintrin.h>
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

// Carry-less multiplication folding (PCLMULQDQ), for long inputs: `crc32`
// issues one 8-byte step per cycle at best (and every few cycles on some
// AMD cores), a fold handles 64 bytes in four independent multiplies.
// Four 128-bit accumulators walk the input 64 bytes at a time; each step
// moves an accumulator 512 bits forward (multiplies it by x^512 mod P, split
// over its two 64-bit halves) and adds the next 16 bytes. At the end the
// four fold into one 128-bit value with the same CRC as everything read so
// far, which `crc32` finishes.

// x^n mod P in ordinary bit order (P = 0x1EDC6F41 with the implicit x^32).
constexpr uint32_t XPowModP(int n) {
  uint32_t r = 1;
  for (int i = 0; i < n; ++i) r = (r << 1) ^ ((r & 0x80000000u) != 0 ? 0x1EDC6F41u : 0u);
  return r;
}

constexpr uint32_t Reflect32(uint32_t v) {
  uint32_t r = 0;
  for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
  return r;
}

// The multiplier that moves a 64-bit half `n` bits forward, in the
// reflected domain of pclmul (hence the reflection and the shift by one).
constexpr uint64_t FoldConstant(int n) { return uint64_t{Reflect32(XPowModP(n))} << 1; }

constexpr uint64_t kFold512Lo = FoldConstant(512 + 32), kFold512Hi = FoldConstant(512 - 32);
constexpr uint64_t kFold128Lo = FoldConstant(128 + 32), kFold128Hi = FoldConstant(128 - 32);

// Below this, the three interleaved `crc32` streams are as fast.
constexpr size_t kFoldMinBytes = 256;
// Below this, Crc32cCopy copies word by word (CopyOneStream).
constexpr size_t kSmallCopyBytes = 512;

__attribute__((target("sse4.2,pclmul"))) inline __m128i Fold(__m128i x, __m128i k) {
  return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

// `state` is the raw (not inverted) CRC register; size >= 64. Returns the
// raw register after the largest multiple of 64 bytes, *consumed says how
// many bytes that was.
__attribute__((target("sse4.2,pclmul"))) uint32_t FoldPclmul(uint32_t state, const uint8_t* p, size_t size,
                                                             size_t* consumed) {
  const __m128i k512 = _mm_set_epi64x(static_cast<int64_t>(kFold512Hi), static_cast<int64_t>(kFold512Lo));
  const __m128i k128 = _mm_set_epi64x(static_cast<int64_t>(kFold128Hi), static_cast<int64_t>(kFold128Lo));
  auto load = [](const uint8_t* q) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)); };
  // The register enters as the first four bytes xor'ed with it.
  __m128i x0 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(static_cast<int>(state)));
  __m128i x1 = load(p + 16), x2 = load(p + 32), x3 = load(p + 48);
  size_t done = 64;
  for (; done + 64 <= size; done += 64) {
    x0 = _mm_xor_si128(Fold(x0, k512), load(p + done));
    x1 = _mm_xor_si128(Fold(x1, k512), load(p + done + 16));
    x2 = _mm_xor_si128(Fold(x2, k512), load(p + done + 32));
    x3 = _mm_xor_si128(Fold(x3, k512), load(p + done + 48));
  }
  __m128i x = _mm_xor_si128(Fold(x0, k128), x1);
  x = _mm_xor_si128(Fold(x, k128), x2);
  x = _mm_xor_si128(Fold(x, k128), x3);
  uint64_t c = _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(x)));
  c = _mm_crc32_u64(c, static_cast<uint64_t>(_mm_extract_epi64(x, 1)));
  *consumed = done;
  return static_cast<uint32_t>(c);
}

bool PclmulAvailable() {
  static const bool available = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.2");
  return available;
}

// The three interleaved `crc32` streams; `fold`: long inputs by folding.
__attribute__((target("sse4.2"))) uint32_t ExtendStreams(uint32_t crc, const void* data, size_t size,
                                                         bool fold) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t c0 = static_cast<uint32_t>(~crc);
  if (fold && size >= kFoldMinBytes && PclmulAvailable()) {
    size_t consumed = 0;
    c0 = FoldPclmul(static_cast<uint32_t>(c0), p, size, &consumed);
    p += consumed;
    size -= consumed;
  }
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

}  // namespace

uint32_t ExtendHardware(uint32_t crc, const void* data, size_t size) {
  return ExtendStreams(crc, data, size, /*fold=*/false);
}

uint32_t ExtendFolding(uint32_t crc, const void* data, size_t size) {
  return ExtendStreams(crc, data, size, /*fold=*/true);
}

// Small inputs (a ring's short messages): one stream, each word loaded once,
// stored and fed to `crc32`; no call to memcpy, no stream combining.
__attribute__((target("sse4.2"))) uint32_t CopyOneStream(void* dst, const void* src, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  uint8_t* q = static_cast<uint8_t*>(dst);
  uint64_t c = 0xFFFFFFFFu;
  for (; size >= 8; size -= 8, p += 8, q += 8) {
    const uint64_t word = LoadLe64(p);
    std::memcpy(q, &word, 8);
    c = _mm_crc32_u64(c, word);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; size > 0; --size) {
    *q++ = *p;
    c32 = _mm_crc32_u8(c32, *p++);
  }
  return ~c32;
}

uint32_t CopyHardware(void* dst, const void* src, size_t size) {
  if (size < kSmallCopyBytes) return CopyOneStream(dst, src, size);
  // Copy a block with the C library's tuned memcpy, then checksum it while
  // it is still in L1: the source is read from memory once.
  constexpr size_t kChunk = 3 * kBlock;
  const char* p = static_cast<const char*>(src);
  char* q = static_cast<char*>(dst);
  uint32_t crc = 0;
  while (size > 0) {
    const size_t n = size < kChunk ? size : kChunk;
    std::memcpy(q, p, n);
    crc = ExtendStreams(crc, q, n, /*fold=*/false);
    p += n;
    q += n;
    size -= n;
  }
  return crc;
}

__attribute__((target("sse4.2"))) uint32_t CopyInterleaved(void* dst, const void* src, size_t size) {
  // Each 8-byte word is loaded once, stored, and fed to one of three `crc32`
  // streams (three sub-blocks of kBlock), which are then combined.
  const uint8_t* p = static_cast<const uint8_t*>(src);
  uint8_t* q = static_cast<uint8_t*>(dst);
  uint64_t c0 = 0xFFFFFFFFu;
  if (size >= 3 * kBlock) {
    const ShiftTables& shift = BlockShift();
    while (size >= 3 * kBlock) {
      uint64_t c1 = 0, c2 = 0;
      for (size_t i = 0; i < kBlock; i += 8) {
        const uint64_t a = LoadLe64(p + i), b = LoadLe64(p + kBlock + i), c = LoadLe64(p + 2 * kBlock + i);
        std::memcpy(q + i, &a, 8);
        std::memcpy(q + kBlock + i, &b, 8);
        std::memcpy(q + 2 * kBlock + i, &c, 8);
        c0 = _mm_crc32_u64(c0, a);
        c1 = _mm_crc32_u64(c1, b);
        c2 = _mm_crc32_u64(c2, c);
      }
      uint32_t s = Shift(shift, static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
      s = Shift(shift, s) ^ static_cast<uint32_t>(c2);
      c0 = s;
      p += 3 * kBlock;
      q += 3 * kBlock;
      size -= 3 * kBlock;
    }
  }
  std::memcpy(q, p, size);
  return ExtendStreams(~static_cast<uint32_t>(c0), q, size, /*fold=*/false);
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
uint32_t CopyInterleaved(void* dst, const void* src, size_t size) { return CopyHardware(dst, src, size); }

uint32_t ExtendHardware(uint32_t crc, const void* data, size_t size) {
  return ExtendSoftware(crc, data, size);
}
uint32_t ExtendFolding(uint32_t crc, const void* data, size_t size) {
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

uint32_t Crc32cExtendUncached(uint32_t crc, const void* data, size_t size) {
  if (crc32c_internal::HardwareAvailable()) {
    return crc32c_internal::ExtendFolding(crc, data, size);
  }
  return crc32c_internal::ExtendSoftware(crc, data, size);
}

uint32_t Crc32cCopy(void* dst, const void* src, size_t size) {
  if (crc32c_internal::HardwareAvailable()) return crc32c_internal::CopyHardware(dst, src, size);
  std::memcpy(dst, src, size);
  return crc32c_internal::ExtendSoftware(0, dst, size);
}

}  // namespace moerl
