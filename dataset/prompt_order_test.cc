#include "dataset/prompt_order.h"

#include <algorithm>
#include <numeric>

#include "gtest/gtest.h"

namespace moerl {
namespace {

TEST(PromptOrder, DropLastKeepsWholeBatchesOnly) {
  EXPECT_EQ(PromptOrder(7473, {1, true, true, 256}).prompts_per_epoch(), 7424u);  // 29 * 256
  EXPECT_EQ(PromptOrder(7473, {1, true, false, 256}).prompts_per_epoch(), 7473u);
  EXPECT_EQ(PromptOrder(10, {1, true, true, 20}).prompts_per_epoch(), 0u);
}

TEST(PromptOrder, EachEpochIsAPermutationThatDependsOnSeedAndEpoch) {
  PromptOrder order(100, {7, true, true, 1});
  std::vector<uint64_t> e0 = order.EpochOrder(0), e1 = order.EpochOrder(1);
  std::vector<uint64_t> sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint64_t> identity(100);
  std::iota(identity.begin(), identity.end(), uint64_t{0});
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(e0, identity);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(e0, PromptOrder(100, {7, true, true, 1}).EpochOrder(0));
  EXPECT_NE(e0, PromptOrder(100, {8, true, true, 1}).EpochOrder(0));
}

// Pinned values: the shuffle must not change across platforms or releases,
// or resumed runs would publish different prompts.
TEST(PromptOrder, ShuffleIsPinned) {
  EXPECT_EQ(PromptOrder(10, {1, true, true, 1}).EpochOrder(0),
            (std::vector<uint64_t>{3, 1, 6, 7, 0, 2, 5, 9, 4, 8}));
}

TEST(PromptOrder, NoShuffleIsFileOrder) {
  EXPECT_EQ(PromptOrder(4, {1, false, true, 1}).EpochOrder(3),
            (std::vector<uint64_t>{0, 1, 2, 3}));
}

TEST(PromptOrder, NextRollsOverToTheNextEpoch) {
  PromptOrder order(5, {1, true, true, 2});  // 4 prompts per epoch
  EXPECT_EQ(order.Next({0, 2}), (DataPosition{0, 3}));
  EXPECT_EQ(order.Next({0, 3}), (DataPosition{1, 0}));
  EXPECT_EQ(order.RowAt({1, 3}), order.EpochOrder(1)[3]);
}

}  // namespace
}  // namespace moerl
