// RingChecksum kernels: scalar, SSE2 and AVX2, one definition (see
// ring_checksum.h). Each processes 64-byte stripes; a SIMD register holds 2
// (SSE2) or 4 (AVX2) of the eight 64-bit lanes. `_mm_mul_epu32` multiplies
// the low 32 bits of each 64-bit lane, so lo32(x) * hi32(x) is one multiply
// of x by x shifted right by 32; "acc[i ^ 1] += w[i]" is an add of w with
// its 64-bit halves swapped.
#include "common/transport/ring_checksum.h"

#include <cstring>

#include "common/transport/crc32c.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace moerl {
namespace ring_checksum_internal {
namespace {

alignas(64) constexpr uint64_t kKey[8] = {
    0x1D52490575FFC53DULL, 0xE2A214E8BBE9C675ULL, 0x186C39E8C7BB69F7ULL, 0x03AA3897FCF4C6B7ULL,
    0x64D4748CA3C77EBFULL, 0x5C22C46963E968FDULL, 0x8C656018EEE38DC1ULL, 0xB2609A0BDD2B7551ULL};
alignas(64) constexpr uint64_t kStep[8] = {
    0x3B9BE05D0E8E2329ULL, 0x5BD0F521BE84762BULL, 0xA4E0689E1888DF21ULL, 0x7EA3EF27E2E90529ULL,
    0x7B81E5E0309E6043ULL, 0x5C3981A844AB26D9ULL, 0x99BA695AB78D8387ULL, 0x0BCC0D1CD5A93145ULL};
alignas(64) constexpr uint64_t kInit[8] = {
    0x1F95E90587134BE1ULL, 0xE08137F33A087EC9ULL, 0x694472D1A7D32947ULL, 0x6B8816776B5ACB73ULL,
    0x56DFD21E9D1F5C01ULL, 0xC9CE5DDC2A52183FULL, 0xA98647FE161B80DFULL, 0xF41FAE4A5518983DULL};
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kSeed = 0x27D4EB2F165667C5ULL;
constexpr size_t kStripe = 64;

inline uint64_t Rotl(uint64_t v, int r) { return (v << r) | (v >> (64 - r)); }

inline uint64_t Fmix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

uint64_t Finish(const uint64_t acc[8], size_t size) {
  uint64_t h = static_cast<uint64_t>(size) * kP1 + kSeed;
  for (int i = 0; i < 8; ++i) h = Rotl((h ^ acc[i]) * kP2, 31);
  return Fmix64(h);
}

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));  // little-endian targets only (x86-64, aarch64)
  return v;
}

// The last, partial stripe: zero-padded (the copy of its bytes is the caller's).
struct Tail {
  alignas(64) uint8_t bytes[kStripe];
  Tail(const uint8_t* p, size_t n) {
    std::memset(bytes, 0, sizeof(bytes));
    std::memcpy(bytes, p, n);
  }
};

uint64_t ScalarKernel(void* dst, const void* src, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  if (dst != nullptr) std::memcpy(dst, src, size);
  uint64_t acc[8], key[8];
  std::memcpy(acc, kInit, sizeof(acc));
  std::memcpy(key, kKey, sizeof(key));
  auto stripe = [&](const uint8_t* s) {
    for (int i = 0; i < 8; ++i) {
      const uint64_t w = Load64(s + 8 * i);
      const uint64_t x = w ^ key[i];
      acc[i] += (x & 0xFFFFFFFFu) * (x >> 32);
      acc[i ^ 1] += w;
      key[i] += kStep[i];
    }
  };
  const size_t full = size / kStripe;
  for (size_t s = 0; s < full; ++s) stripe(p + s * kStripe);
  if (size % kStripe != 0) stripe(Tail(p + full * kStripe, size % kStripe).bytes);
  return Finish(acc, size);
}

#if defined(__x86_64__)

// ---- SSE2: lanes (0,1) (2,3) (4,5) (6,7) in four registers.
struct Sse2State {
  __m128i acc[4], key[4], step[4];
};

inline void Sse2Lane(Sse2State* st, int j, __m128i w) {
  const __m128i x = _mm_xor_si128(w, st->key[j]);
  const __m128i prod = _mm_mul_epu32(x, _mm_srli_epi64(x, 32));
  st->acc[j] = _mm_add_epi64(st->acc[j], _mm_add_epi64(prod, _mm_shuffle_epi32(w, 0x4E)));
  st->key[j] = _mm_add_epi64(st->key[j], st->step[j]);
}

template <bool kCopy>
inline void Sse2Stripe(Sse2State* st, const uint8_t* p, uint8_t* q) {
  const __m128i w0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i w1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
  const __m128i w2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32));
  const __m128i w3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48));
  if (kCopy) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), w0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), w1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 32), w2);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 48), w3);
  }
  Sse2Lane(st, 0, w0);
  Sse2Lane(st, 1, w1);
  Sse2Lane(st, 2, w2);
  Sse2Lane(st, 3, w3);
}

// kBlockCopy: copy with memcpy a block at a time, then checksum the block
// from the destination while it is in L1 (the C library's copy may beat
// vector stores: `rep movsb` writes whole lines without reading them first).
constexpr size_t kBlock = 4096;

template <bool kCopy, bool kBlockCopy = false>
uint64_t Sse2Kernel(void* dst, const void* src, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  // Without a copy, q only shadows p (never written through).
  uint8_t* q = kCopy ? static_cast<uint8_t*>(dst) : const_cast<uint8_t*>(p);
  Sse2State st;
  for (int j = 0; j < 4; ++j) {
    st.acc[j] = _mm_load_si128(reinterpret_cast<const __m128i*>(kInit + 2 * j));
    st.key[j] = _mm_load_si128(reinterpret_cast<const __m128i*>(kKey + 2 * j));
    st.step[j] = _mm_load_si128(reinterpret_cast<const __m128i*>(kStep + 2 * j));
  }
  const size_t full = size / kStripe;
  size_t s = 0;
  if (kCopy && kBlockCopy) {
    constexpr size_t kStripes = kBlock / kStripe;
    for (; s + kStripes <= full; s += kStripes) {
      std::memcpy(q + s * kStripe, p + s * kStripe, kBlock);
      for (size_t t = s; t < s + kStripes; ++t) Sse2Stripe<false>(&st, q + t * kStripe, nullptr);
    }
  }
  for (; s < full; ++s) Sse2Stripe<kCopy>(&st, p + s * kStripe, q + s * kStripe);
  const size_t rest = size % kStripe;
  if (rest != 0) {
    if (kCopy) std::memcpy(q + full * kStripe, p + full * kStripe, rest);
    Sse2Stripe<false>(&st, Tail(p + full * kStripe, rest).bytes, nullptr);
  }
  alignas(16) uint64_t acc[8];
  for (int j = 0; j < 4; ++j) _mm_store_si128(reinterpret_cast<__m128i*>(acc + 2 * j), st.acc[j]);
  return Finish(acc, size);
}

// ---- AVX2: lanes 0-3 and 4-7 in two registers.
#define MOERL_AVX2 __attribute__((target("avx2")))

struct Avx2State {
  __m256i acc[2], key[2], step[2];
};

MOERL_AVX2 inline void Avx2Lane(Avx2State* st, int j, __m256i w) {
  const __m256i x = _mm256_xor_si256(w, st->key[j]);
  const __m256i prod = _mm256_mul_epu32(x, _mm256_srli_epi64(x, 32));
  st->acc[j] = _mm256_add_epi64(st->acc[j], _mm256_add_epi64(prod, _mm256_shuffle_epi32(w, 0x4E)));
  st->key[j] = _mm256_add_epi64(st->key[j], st->step[j]);
}

template <bool kCopy>
MOERL_AVX2 inline void Avx2Stripe(Avx2State* st, const uint8_t* p, uint8_t* q) {
  const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
  if (kCopy) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), w0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32), w1);
  }
  Avx2Lane(st, 0, w0);
  Avx2Lane(st, 1, w1);
}

// How far ahead of the loads the AVX2 kernel asks for source lines.
constexpr size_t kPrefetchAhead = 1024;

template <bool kCopy, bool kBlockCopy = false>
MOERL_AVX2 uint64_t Avx2Kernel(void* dst, const void* src, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  uint8_t* q = kCopy ? static_cast<uint8_t*>(dst) : const_cast<uint8_t*>(p);
  Avx2State st;
  for (int j = 0; j < 2; ++j) {
    st.acc[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kInit + 4 * j));
    st.key[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kKey + 4 * j));
    st.step[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kStep + 4 * j));
  }
  const size_t full = size / kStripe;
  size_t s = 0;
  if (kCopy && kBlockCopy) {
    constexpr size_t kStripes = kBlock / kStripe;
    for (; s + kStripes <= full; s += kStripes) {
      std::memcpy(q + s * kStripe, p + s * kStripe, kBlock);
      for (size_t t = s; t < s + kStripes; ++t) Avx2Stripe<false>(&st, q + t * kStripe, nullptr);
    }
  }
  // Two stripes a round: more independent work between the lane sums.
  for (; s + 2 <= full; s += 2) {
    // Never past the end: in a ring the next bytes may be a slot that a
    // producer is writing right now.
    if ((s + 2) * kStripe + kPrefetchAhead <= size) {
      _mm_prefetch(reinterpret_cast<const char*>(p + s * kStripe + kPrefetchAhead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + s * kStripe + kPrefetchAhead + kStripe), _MM_HINT_T0);
    }
    Avx2Stripe<kCopy>(&st, p + s * kStripe, q + s * kStripe);
    Avx2Stripe<kCopy>(&st, p + (s + 1) * kStripe, q + (s + 1) * kStripe);
  }
  if (s < full) Avx2Stripe<kCopy>(&st, p + s * kStripe, q + s * kStripe);
  const size_t rest = size % kStripe;
  if (rest != 0) {
    if (kCopy) std::memcpy(q + full * kStripe, p + full * kStripe, rest);
    Avx2Stripe<false>(&st, Tail(p + full * kStripe, rest).bytes, nullptr);
  }
  alignas(32) uint64_t acc[8];
  for (int j = 0; j < 2; ++j) _mm256_store_si256(reinterpret_cast<__m256i*>(acc + 4 * j), st.acc[j]);
  return Finish(acc, size);
}

#undef MOERL_AVX2

bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}

#endif  // __x86_64__

}  // namespace

bool KernelAvailable(Kernel kernel) {
  switch (kernel) {
    case Kernel::kScalar:
      return true;
#if defined(__x86_64__)
    case Kernel::kSse2:
      return true;
    case Kernel::kAvx2:
      return HasAvx2();
#else
    default:
      return false;
#endif
  }
  return false;
}

Kernel BestKernel() {
  if (KernelAvailable(Kernel::kAvx2)) return Kernel::kAvx2;
  if (KernelAvailable(Kernel::kSse2)) return Kernel::kSse2;
  return Kernel::kScalar;
}

uint64_t ChecksumBlockCopy(Kernel kernel, void* dst, const void* src, size_t size) {
#if defined(__x86_64__)
  if (kernel == Kernel::kAvx2) return Avx2Kernel<true, true>(dst, src, size);
  if (kernel == Kernel::kSse2) return Sse2Kernel<true, true>(dst, src, size);
#endif
  return ScalarKernel(dst, src, size);
}

const char* KernelName(Kernel kernel) {
  switch (kernel) {
    case Kernel::kScalar:
      return "scalar";
    case Kernel::kSse2:
      return "sse2";
    case Kernel::kAvx2:
      return "avx2";
  }
  return "?";
}

uint64_t Checksum(Kernel kernel, void* dst, const void* src, size_t size) {
#if defined(__x86_64__)
  if (kernel == Kernel::kAvx2) {
    return dst != nullptr ? Avx2Kernel<true>(dst, src, size) : Avx2Kernel<false>(nullptr, src, size);
  }
  if (kernel == Kernel::kSse2) {
    return dst != nullptr ? Sse2Kernel<true>(dst, src, size) : Sse2Kernel<false>(nullptr, src, size);
  }
#endif
  return ScalarKernel(dst, src, size);
}

}  // namespace ring_checksum_internal

// Below this size the SSE2 kernel is used even where AVX2 exists. Measured
// in the ring (Push/Pop of 64-byte messages, one process): the 256-bit
// kernel cost ~0.7 us a call when called between other work (perf puts the
// stall on its first 256-bit instruction), the 128-bit one ~30 ns; at 1 MiB
// AVX2 is faster (4 against 2 GB/s), between 4 and 64 KiB they were even
// within the noise. Both give the same value.
constexpr size_t kAvx2MinBytes = 16384;

// Below this size RingChecksum is CRC32C, tagged in the high half: the
// hash's fixed cost (its finish, ~50 cycles) is more than `crc32` needs for
// a few words; above it the hash's ~0.2 cycles a byte beat `crc32`'s 0.375.
constexpr size_t kCrcBelowBytes = 256;
constexpr uint64_t kCrcTag = uint64_t{0x43524332} << 32;

uint64_t RingChecksum(const void* data, size_t size) {
  using namespace ring_checksum_internal;
  if (size < kCrcBelowBytes) return uint64_t{Crc32cExtend(0, data, size)} | kCrcTag;
#if defined(__x86_64__)
  if (size >= kAvx2MinBytes && HasAvx2()) return Avx2Kernel<false>(nullptr, data, size);
  return Sse2Kernel<false>(nullptr, data, size);
#else
  return ScalarKernel(nullptr, data, size);
#endif
}

uint64_t RingChecksumCopy(void* dst, const void* src, size_t size) {
  using namespace ring_checksum_internal;
  if (size < kCrcBelowBytes) return uint64_t{Crc32cCopy(dst, src, size)} | kCrcTag;
#if defined(__x86_64__)
  if (size >= kAvx2MinBytes && HasAvx2()) return Avx2Kernel<true>(dst, src, size);
  return Sse2Kernel<true>(dst, src, size);
#else
  return ScalarKernel(dst, src, size);
#endif
}

}  // namespace moerl
