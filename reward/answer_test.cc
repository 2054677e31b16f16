#include "reward/answer.h"

#include "gtest/gtest.h"

namespace moerl {
namespace {

TEST(ExtractLastNumber, HandlesCommasDecimalsAndSigns) {
  EXPECT_EQ(ExtractLastNumber("she pays $1,234.50 in total."), "1234.50");
  EXPECT_EQ(ExtractLastNumber("the change is -7"), "-7");
  EXPECT_EQ(ExtractLastNumber("3 apples and 4 pears"), "4");
  EXPECT_EQ(ExtractLastNumber("no digits"), std::nullopt);
  EXPECT_EQ(ExtractLastNumber(""), std::nullopt);
}

TEST(ScoreCompletion, ComparesNumerically) {
  Score match = ScoreCompletion("So the answer is 1,200.", "1200");
  EXPECT_EQ(match.reward, 1.0f);
  EXPECT_EQ(match.reason, ScoreReason::kMatch);
  EXPECT_EQ(ScoreCompletion("It is 72.0", "72").reward, 1.0f);
  Score mismatch = ScoreCompletion("It is 71", "72");
  EXPECT_EQ(mismatch.reward, 0.0f);
  EXPECT_EQ(mismatch.reason, ScoreReason::kMismatch);
  EXPECT_EQ(ScoreCompletion("I don't know", "72").reason, ScoreReason::kNoAnswer);
  EXPECT_STREQ(ScoreReasonName(ScoreReason::kNoAnswer), "no_answer");
}

}  // namespace
}  // namespace moerl
