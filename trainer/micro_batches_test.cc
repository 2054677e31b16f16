#include "trainer/micro_batches.h"

#include <cmath>

#include "gtest/gtest.h"
#include "trainer/lr_schedule.h"

namespace moerl {
namespace {

TEST(PackMicroBatches, FirstFitDecreasingUnderTheCap) {
  const std::vector<int64_t> lengths = {5, 9, 3, 7, 2, 12};
  const auto bins = PackMicroBatches(lengths, {0, 1, 2, 3, 4, 5}, 12);
  // FFD: 12 | 9+3 | 7+5 | 2
  ASSERT_EQ(bins.size(), 4u);
  EXPECT_EQ(bins[0], (IndexList{0, 3}));
  EXPECT_EQ(bins[1], (IndexList{1, 2}));
  EXPECT_EQ(bins[2], (IndexList{4}));
  EXPECT_EQ(bins[3], (IndexList{5}));
  for (const auto& bin : bins) {
    int64_t sum = 0;
    for (int64_t i : bin) sum += lengths[i];
    EXPECT_LE(sum, 12);
  }
}

TEST(PackMicroBatches, OversizedSequenceGetsItsOwnBinAndNullIsOneBin) {
  const std::vector<int64_t> lengths = {20, 3, 4};
  EXPECT_EQ(PackMicroBatches(lengths, {0, 1, 2}, 10).size(), 2u);
  EXPECT_EQ(PackMicroBatches(lengths, {2, 0, 1}, std::nullopt), (std::vector<IndexList>{{0, 1, 2}}));
}

TEST(SplitMinibatches, BalancedNonEmptyAndCoversAll) {
  const std::vector<int64_t> lengths = {10, 10, 1, 1, 5, 5, 8, 2};
  const auto minis = SplitMinibatches(lengths, 2);
  ASSERT_EQ(minis.size(), 2u);
  int64_t a = 0, b = 0;
  for (int64_t i : minis[0]) a += lengths[i];
  for (int64_t i : minis[1]) b += lengths[i];
  EXPECT_EQ(a + b, 42);
  EXPECT_EQ(a, 21);
  EXPECT_EQ(minis[0].size() + minis[1].size(), 8u);
  EXPECT_EQ(SplitMinibatches({3, 4}, 5).size(), 2u);
}

TEST(LrSchedule, WarmupThenShapes) {
  LrSchedule constant{"constant", 0.1, 0.0, 100};
  EXPECT_EQ(constant.WarmupSteps(), 10);
  EXPECT_DOUBLE_EQ(constant.Multiplier(0), 0.0);
  EXPECT_DOUBLE_EQ(constant.Multiplier(5), 0.5);
  EXPECT_DOUBLE_EQ(constant.Multiplier(50), 1.0);
  LrSchedule linear{"linear", 0.1, 0.0, 100};
  EXPECT_DOUBLE_EQ(linear.Multiplier(10), 1.0);
  EXPECT_DOUBLE_EQ(linear.Multiplier(55), 0.5);
  EXPECT_DOUBLE_EQ(linear.Multiplier(100), 0.0);
  LrSchedule cosine{"cosine", 0.0, 0.1, 100};
  EXPECT_DOUBLE_EQ(cosine.Multiplier(0), 1.0);
  EXPECT_NEAR(cosine.Multiplier(50), 0.1 + 0.9 * 0.5, 1e-12);
  EXPECT_NEAR(cosine.Multiplier(100), 0.1, 1e-12);
  LrSchedule none{"constant", 0.001, 0.0, 0};
  EXPECT_DOUBLE_EQ(none.Multiplier(0), 1.0);
}

}  // namespace
}  // namespace moerl
