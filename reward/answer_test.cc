#include "reward/answer.h"

#include "gtest/gtest.h"

namespace moerl {
namespace {

void ExpectScore(absl::string_view completion, absl::string_view gold, float reward,
                 ScoreReason reason) {
  Score s = ScoreCompletion(completion, gold);
  EXPECT_EQ(s.reward, reward) << "'" << completion << "' vs gold '" << gold << "' (answer '"
                              << s.answer << "' from " << AnswerSourceName(s.source) << ")";
  EXPECT_EQ(s.reason, reason) << "'" << completion << "' vs gold '" << gold << "'";
}

TEST(ScoreCompletion, MatchesTheGoldInManyStyles) {
  for (const char* completion :
       {"\\boxed{18}", "\\boxed{\\$18}", "\\boxed{18 \\text{ dollars}}", "\\boxed{18.00}",
        "The answer is 18.", "Final answer: $18", "#### 18", "so she makes 18 dollars.",
        "\\boxed{\\frac{36}{2}}", "\\boxed{36/2}", "She makes $18$ dollars<|im_end|>",
        "\\boxed{18} and again \\boxed{18.0}"}) {
    ExpectScore(completion, "18", 1.0f, ScoreReason::kMatch);
  }
  ExpectScore("\\boxed{1,000}", "1000", 1.0f, ScoreReason::kMatch);
  ExpectScore("It costs $1,000.", "1,000", 1.0f, ScoreReason::kMatch);
  ExpectScore("\\boxed{-3}", "-3", 1.0f, ScoreReason::kMatch);
  ExpectScore("\\boxed{2.5}", "2.5", 1.0f, ScoreReason::kMatch);
  ExpectScore("The answer is 25%.", "25", 1.0f, ScoreReason::kMatch);
}

TEST(ScoreCompletion, TakesTheGoldFromAWholeSolution) {
  ExpectScore("\\boxed{9}", "16 - 3 - 4 = <<16-3-4=9>>9\n#### 9", 1.0f, ScoreReason::kMatch);
}

TEST(ScoreCompletion, GivesZeroWithReason) {
  ExpectScore("\\boxed{17}", "18", 0.0f, ScoreReason::kMismatch);
  ExpectScore("\\boxed{-18}", "18", 0.0f, ScoreReason::kMismatch);
  ExpectScore("\\boxed{x}", "18", 0.0f, ScoreReason::kMismatch);
  ExpectScore("", "18", 0.0f, ScoreReason::kNoAnswer);
  ExpectScore("no idea", "18", 0.0f, ScoreReason::kNoAnswer);
  ExpectScore("\\boxed{18}", "eighteen", 0.0f, ScoreReason::kInvalidGold);
}

TEST(ScoreCompletion, BoxesThatDisagreeAreAMismatchEvenIfOneIsRight) {
  ExpectScore("\\boxed{17} or maybe \\boxed{18}", "18", 0.0f, ScoreReason::kMismatch);
  ExpectScore("\\boxed{18} or maybe \\boxed{17}", "18", 0.0f, ScoreReason::kMismatch);
}

TEST(ScoreCompletion, ComparesAtSixDecimals) {
  ExpectScore("\\boxed{0.3333333}", "0.333333", 1.0f, ScoreReason::kMatch);
  ExpectScore("\\boxed{0.33334}", "0.333333", 0.0f, ScoreReason::kMismatch);
}

TEST(ScoreReasonName, NamesEveryReason) {
  EXPECT_STREQ(ScoreReasonName(ScoreReason::kNoAnswer), "no_answer");
  EXPECT_STREQ(ScoreReasonName(ScoreReason::kMismatch), "mismatch");
  EXPECT_STREQ(ScoreReasonName(ScoreReason::kMatch), "match");
  EXPECT_STREQ(ScoreReasonName(ScoreReason::kInvalidGold), "invalid_gold");
}

}  // namespace
}  // namespace moerl
