#include "rollout/engine/small_gemm.h"

#include <cmath>
#include <random>
#include <vector>

#include <ATen/Parallel.h>

#include "gtest/gtest.h"

namespace moerl {
namespace {

// Every row count the unrolled blocks use (1-4 plus remainders), odd and even
// output widths (the paired-row loop and its tail), k with and without the
// vector path (k % 8).
TEST(SmallGemmNT, MatchesTheTripleLoopForAllBlockShapes) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 9}) {
    for (int64_t k : {8, 64, 520, 13}) {
      for (int64_t n : {1, 2, 7, 64, 129}) {
        std::vector<float> x(m * k), w(n * k), y(m * n), want(m * n);
        for (float& v : x) v = normal(rng);
        for (float& v : w) v = normal(rng);
        SmallGemmNT(x.data(), m, k, w.data(), n, y.data());
        SmallGemmNTReference(x.data(), m, k, w.data(), n, want.data());
        double worst = 0;
        for (int64_t i = 0; i < m * n; ++i) worst = std::max(worst, std::abs(double(y[i]) - want[i]));
        // fp32 sums of k products of N(0,1) values: error ~ sqrt(k) ulp-scale.
        EXPECT_LE(worst, 1e-5 * std::sqrt(double(k)) * 4) << "m=" << m << " k=" << k << " n=" << n;
      }
    }
  }
}

// With two threads the output rows are split across tasks at arbitrary
// (also odd) boundaries; every row must still be computed exactly once.
TEST(SmallGemmNT, TwoThreadsGiveTheSameResultAsOne) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t m = 3, k = 512, n = 1031;
  std::vector<float> x(m * k), w(n * k), one(m * n), two(m * n, -1.0f);
  for (float& v : x) v = normal(rng);
  for (float& v : w) v = normal(rng);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  SmallGemmNT(x.data(), m, k, w.data(), n, one.data());
  at::set_num_threads(2);
  SmallGemmNT(x.data(), m, k, w.data(), n, two.data());
  at::set_num_threads(threads);
  EXPECT_EQ(one, two);
}

}  // namespace
}  // namespace moerl
