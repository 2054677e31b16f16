// SplitMix64: a tiny pseudo-random generator with a fixed definition, so that
// shuffles and synthetic data are identical on every platform and standard
// library (std::uniform_int_distribution is not).
//
//   SplitMix64 rng(seed);
//   uint64_t die = 1 + rng.Below(6);
//
// Not thread-safe; one generator per thread.
#ifndef MOERL_DATASET_SPLITMIX64_H_
#define MOERL_DATASET_SPLITMIX64_H_

#include <cstdint>

namespace moerl {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, bound), bound > 0, by rejection (no modulo bias).
  uint64_t Below(uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return x % bound;
  }

  // Uniform in [lo, hi], lo <= hi.
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo) + 1));
  }

 private:
  uint64_t state_;
};

}  // namespace moerl

#endif  // MOERL_DATASET_SPLITMIX64_H_
