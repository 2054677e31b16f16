#include "trainer/grpo.h"

#include <vector>

#include "gtest/gtest.h"

namespace moerl {
namespace {

TEST(GroupAdvantages, NormalisesEachGroupByItsOwnStatistics) {
  // Group 1: {1, 0, 0, 1}: mean 0.5, unbiased std sqrt(1/3).
  // Group 2: all equal: zero advantages (no signal).
  std::vector<float> rewards = {1, 0, 0, 1, 1, 1, 1, 1};
  auto adv = GroupAdvantages(rewards, 4, {.normalize_std = true, .eps = 0.0f});
  ASSERT_TRUE(adv.ok());
  const float a = 0.5f / std::sqrt(1.0f / 3.0f);
  std::vector<float> expected = {a, -a, -a, a, 0, 0, 0, 0};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR((*adv)[i], expected[i], 1e-6) << i;
}

TEST(GroupAdvantages, WithoutStdOnlyCentres) {
  std::vector<float> rewards = {3, 1};
  auto adv = GroupAdvantages(rewards, 2, {.normalize_std = false});
  ASSERT_TRUE(adv.ok());
  EXPECT_FLOAT_EQ((*adv)[0], 1.0f);
  EXPECT_FLOAT_EQ((*adv)[1], -1.0f);
}

TEST(GroupAdvantages, RejectsPartialGroups) {
  std::vector<float> rewards = {1, 0, 1};
  EXPECT_EQ(GroupAdvantages(rewards, 2, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GroupAdvantages(rewards, 0, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moerl
