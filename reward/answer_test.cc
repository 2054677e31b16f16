#include "reward/answer.h"

#include "gtest/gtest.h"

namespace moerl {
namespace {

void ExpectScore(absl::string_view completion, absl::string_view gold, float reward,
                 ScoreReason reason, UnitRule rule = UnitRule::kMathVerify) {
  Score s = ScoreCompletion(completion, gold, rule);
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

// Oracle: math-verify 0.9.0 as AReaL calls it (values checked with the
// library; tools/gsm8k/build_reward_corpus.py labels the same way).
TEST(ScoreCompletion, DefaultIsAsStrictAsMathVerifyAboutBoxedUnits) {
  ExpectScore("\\boxed{18 hours}", "18", 1.0f, ScoreReason::kMatch);
  ExpectScore("\\boxed{18 \\text{ dollars}}", "18", 1.0f, ScoreReason::kMatch);
  ExpectScore("\\boxed{18 dollars}", "18", 0.0f, ScoreReason::kMismatch);
  ExpectScore("\\boxed{\\text{18 apples}}", "18", 0.0f, ScoreReason::kMismatch);
  ExpectScore("\\boxed{\\text{1,250}}", "1250", 0.0f, ScoreReason::kMismatch);
  ExpectScore("\\boxed{1,250\\,\\mathrm{books}}", "1250", 0.0f, ScoreReason::kMismatch);
  ExpectScore("\\boxed{1,250 \\text{ books}}", "1250", 1.0f, ScoreReason::kMatch);
}

TEST(ScoreCompletion, LenientUnitsAcceptsWhatAReaderWould) {
  for (const char* completion :
       {"\\boxed{18 dollars}", "\\boxed{\\text{18 apples}}", "\\boxed{18.}",
        "\\boxed{\\text{18.0}}", "\\boxed{18 \\text{ people} each}"}) {
    ExpectScore(completion, "18", 1.0f, ScoreReason::kMatch, UnitRule::kLenient);
  }
}

// Oracle: math-verify 0.9.0 (checked with the library).
TEST(ScoreCompletion, ABoxedPercentIsItsValueOnlyWhenWrittenAsAWholeNumber) {
  ExpectScore("\\boxed{18\\%}", "18", 1.0f, ScoreReason::kMatch);
  ExpectScore("\\boxed{18\\%}", "0.18", 1.0f, ScoreReason::kMatch);
  ExpectScore("\\boxed{2.5\\%}", "2.5", 0.0f, ScoreReason::kMismatch);
  ExpectScore("\\boxed{2.5\\%}", "0.025", 1.0f, ScoreReason::kMatch);
  ExpectScore("\\boxed{-3\\%}", "-3", 0.0f, ScoreReason::kMismatch);
  ExpectScore("The answer is 2.5%.", "2.5", 1.0f, ScoreReason::kMatch);  // not boxed
  ExpectScore("\\boxed{2.5\\%}", "2.5", 1.0f, ScoreReason::kMatch, UnitRule::kLenient);
}

TEST(ScoreCompletion, ABoxMathVerifyCannotParseFallsBackToTheLastNumber) {
  ExpectScore("Total 18 so far.\n\\boxed{19~feet}", "18", 1.0f, ScoreReason::kMatch);
  ExpectScore("Total 1,250 so far.\n\\boxed{\\frac{1,250}{1}}", "1250", 1.0f, ScoreReason::kMatch);
  ExpectScore("So 3*6 = 18\n\\boxed{18.}", "18", 1.0f, ScoreReason::kMatch);
  ExpectScore("She had 42 apples.\n\\boxed{18.}", "18", 0.0f, ScoreReason::kMismatch);
  ExpectScore("So 3*6 = 18\n\\boxed{\xe2\x82\xac" "17}", "18", 1.0f, ScoreReason::kMatch);
  ExpectScore("\\boxed{18.}", "18", 0.0f, ScoreReason::kNoAnswer);
}

// Oracle: math-verify 0.9.0 (checked with the library).
TEST(ScoreCompletion, ATextEndingInArithmeticIsValuedAsMathVerifyValuesIt) {
  ExpectScore("He makes 10 bags a day, so he needs 40 / 10 = ", "4", 1.0f, ScoreReason::kMatch);
  ExpectScore("Let x be it.\nx = 270 - 95 - 80", "95", 1.0f, ScoreReason::kMatch);
  ExpectScore("We get (3 + 5)", "8", 1.0f, ScoreReason::kMatch);
  ExpectScore("so 2^3^2", "512", 1.0f, ScoreReason::kMatch);
  ExpectScore("so she has 5 + 3 = 8 apples", "8", 1.0f, ScoreReason::kMatch);
  // '\u00d7' is not Python: math-verify falls back to the last number.
  ExpectScore("Total is 3 \xc3\x97 4 + 5", "5", 1.0f, ScoreReason::kMatch);
  ExpectScore("Total is 3 \xc3\x97 4 + 5", "17", 0.0f, ScoreReason::kMismatch);
  EXPECT_EQ(ScoreCompletion("x = 270 - 95 - 80", "95").source, AnswerSource::kLastExpression);
}

TEST(ScoreReasonName, NamesEveryReason) {
  EXPECT_STREQ(ScoreReasonName(ScoreReason::kNoAnswer), "no_answer");
  EXPECT_STREQ(ScoreReasonName(ScoreReason::kMismatch), "mismatch");
  EXPECT_STREQ(ScoreReasonName(ScoreReason::kMatch), "match");
  EXPECT_STREQ(ScoreReasonName(ScoreReason::kInvalidGold), "invalid_gold");
}

}  // namespace
}  // namespace moerl
