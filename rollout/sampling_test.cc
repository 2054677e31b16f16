#include "rollout/sampling.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace moerl {
namespace {

TEST(SampleToken, GreedyPicksArgmaxAndTiesGoToLowerId) {
  absl::BitGen rng;
  std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f};
  auto s = SampleToken(logits, {.temperature = 0.0f}, rng);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->token, 1);
  const double z = std::exp(0.5) + 2 * std::exp(2.0) + std::exp(-1.0);
  EXPECT_NEAR(s->logprob, 2.0 - std::log(z), 1e-6);
}

TEST(SampleToken, TopKOneIsGreedy) {
  absl::BitGen rng;
  std::vector<float> logits = {0.1f, 0.2f, 3.0f};
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(SampleToken(logits, {.temperature = 5.0f, .top_k = 1}, rng)->token, 2);
  }
}

TEST(SampleToken, FrequenciesFollowTheDistribution) {
  std::seed_seq seed{7};
  absl::BitGen rng(seed);
  std::vector<float> logits = {std::log(0.2f), std::log(0.8f)};
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += SampleToken(logits, {}, rng)->token;
  EXPECT_NEAR(ones / static_cast<double>(n), 0.8, 0.02);
}

TEST(SampleToken, RejectsBadParameters) {
  absl::BitGen rng;
  std::vector<float> logits = {1.0f};
  EXPECT_EQ(SampleToken({}, {}, rng).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SampleToken(logits, {.top_p = 0.0f}, rng).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SampleToken(logits, {.temperature = -1.0f}, rng).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moerl
