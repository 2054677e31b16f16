#include "reward/answer_value.h"

#include "gtest/gtest.h"

namespace moerl {
namespace {

double ValueOf(absl::string_view text, UnitRule rule = UnitRule::kMathVerify) {
  std::optional<AnswerValue> v = ParseAnswerValue(text, rule);
  EXPECT_TRUE(v.has_value()) << "could not parse '" << text << "'";
  return v ? v->value : -12345.0;
}

TEST(ParsePlainNumber, AcceptsCommasInGroupsOfThreeDecimalsAndSigns) {
  EXPECT_EQ(ParsePlainNumber("1,234,567"), 1234567.0);
  EXPECT_EQ(ParsePlainNumber("-12.5"), -12.5);
  EXPECT_EQ(ParsePlainNumber(".5"), 0.5);
  EXPECT_EQ(ParsePlainNumber("+3"), 3.0);
  EXPECT_EQ(ParsePlainNumber("1,23"), std::nullopt);
  EXPECT_EQ(ParsePlainNumber("12,5"), std::nullopt);
  EXPECT_EQ(ParsePlainNumber("5."), std::nullopt);
  EXPECT_EQ(ParsePlainNumber(""), std::nullopt);
  EXPECT_EQ(ParsePlainNumber("-"), std::nullopt);
  EXPECT_EQ(ParsePlainNumber("1e5"), std::nullopt);
}

TEST(ParseAnswerValue, LenientStripsCurrencyUnitsAndPunctuation) {
  const UnitRule lenient = UnitRule::kLenient;
  EXPECT_EQ(ValueOf("$18", lenient), 18);
  EXPECT_EQ(ValueOf("\\$1,200.", lenient), 1200);
  EXPECT_EQ(ValueOf("18 dollars", lenient), 18);
  EXPECT_EQ(ValueOf("18 \\text{ apples per day}", lenient), 18);
  EXPECT_EQ(ValueOf("\xe2\x82\xac" "5", lenient), 5);  // euro sign
  EXPECT_EQ(ValueOf("1{,}000", lenient), 1000);
  EXPECT_EQ(ValueOf("90^\\circ", lenient), 90);
  EXPECT_EQ(ValueOf("x = 7", lenient), 7);
  EXPECT_EQ(ValueOf("\\text{1,250}", lenient), 1250);
  EXPECT_EQ(ValueOf("\\text{18 people}", lenient), 18);
}

// Oracle: math-verify 0.9.0 with latex2sympy2_extended 1.11, called as AReaL
// calls it, on "\\boxed{<text>}" against gold 18 (or 1250).
TEST(ParseAnswerValue, MathVerifyRuleReadsWhatMathVerifyReads) {
  for (const char* text :
       {"$18", "\\$18", "18 hours", "18 apples", "18 square feet", "18 cm", "18 apple pies",
        "18 \\text{ dollars}", "18\\text{apples}", "18 \\mathrm{apples}", "18 \\textbf{people}",
        "18 \\mbox{ apples}", "18 \\text{ dollars}^2", "18\\,\\text{dollars}",
        "18\\ \\text{apples}", "\\text{18}", "\\textbf{18}", "x = 18", "(18)", "18^\\circ"}) {
    EXPECT_EQ(ValueOf(text), 18) << text;
  }
  EXPECT_EQ(ValueOf("1,250 \\text{ dollars}"), 1250);
  EXPECT_EQ(ValueOf("\\$1,250"), 1250);
  EXPECT_EQ(ValueOf("1{,}250"), 1250);
  EXPECT_EQ(ValueOf("1,250%"), 1250);  // a plain-text percent, as the answer fuzzer found
}

TEST(ParseAnswerValue, MathVerifyRuleRejectsWhatMathVerifyRejects) {
  for (const char* text :
       {"18 dollars", "18 people", "18 cookies", "18 Hours", "\\text{18 apples}",
        "18 \\text{ apples} each", "18 \\text{apple} pies", "\\text{1,250}", "\\text{18.5}",
        "18.", "\xe2\x82\xac" "18", "18~\\text{apples}", "1,250\\,\\mathrm{km}"}) {
    EXPECT_EQ(ParseAnswerValue(text), std::nullopt) << text;
  }
}

TEST(MathVerifyCannotParse, TellsAParseFailureFromANonNumber) {
  for (const char* text : {"18.", "18,", "18;", "18?", "(18", "18)", "\xe2\x82\xac" "18"}) {
    EXPECT_TRUE(MathVerifyCannotParse(text)) << text;
  }
  for (const char* text : {"18", "18 dollars", "\\text{1,250}", "1,250\\,", "18\\,"}) {
    EXPECT_FALSE(MathVerifyCannotParse(text)) << text;
  }
}

TEST(ParseAnswerValue, UnwrapsLatex) {
  EXPECT_EQ(ValueOf("\\text{18}"), 18);
  EXPECT_EQ(ValueOf("\\textbf{\\$18}", UnitRule::kLenient), 18);
  EXPECT_EQ(ValueOf("\\boxed{\\mathrm{42}}"), 42);
  EXPECT_EQ(ValueOf("\\frac{7}{2}"), 3.5);
  EXPECT_EQ(ValueOf("\\dfrac{36}{2}"), 18);
  EXPECT_EQ(ValueOf("-\\frac{1}{4}"), -0.25);
  EXPECT_EQ(ValueOf("36/2"), 18);
  EXPECT_EQ(ValueOf("\\left( 5 \\right)"), 5);
}

TEST(ParseAnswerValue, MarksPercent) {
  std::optional<AnswerValue> v = ParseAnswerValue("45\\%");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->value, 45);
  EXPECT_TRUE(v->percent);
  EXPECT_TRUE(ParseAnswerValue("45 percent")->percent);
  EXPECT_TRUE(ParseAnswerValue("45 percent", UnitRule::kLenient)->percent);
  EXPECT_FALSE(ParseAnswerValue("45")->percent);
}

TEST(ParseAnswerValue, RejectsWhatIsNotANumber) {
  EXPECT_EQ(ParseAnswerValue("eighteen"), std::nullopt);
  EXPECT_EQ(ParseAnswerValue(""), std::nullopt);
  EXPECT_EQ(ParseAnswerValue("3/0"), std::nullopt);
  EXPECT_EQ(ParseAnswerValue("\\frac{1}{0}"), std::nullopt);
  EXPECT_EQ(ParseAnswerValue("1/2/3"), std::nullopt);
  EXPECT_EQ(ParseAnswerValue("\\text{"), std::nullopt);
  EXPECT_EQ(ParseAnswerValue("17 or 18"), std::nullopt);
}

TEST(AnswerValuesMatch, RoundsToSixDecimals) {
  EXPECT_TRUE(AnswerValuesMatch({18.0, false}, {18.0000004, false}));
  EXPECT_FALSE(AnswerValuesMatch({18.0, false}, {18.000002, false}));
  EXPECT_TRUE(AnswerValuesMatch({0.333333, false}, {1.0 / 3.0, false}));
}

TEST(AnswerValuesMatch, PercentMatchesValueOrHundredth) {
  EXPECT_TRUE(AnswerValuesMatch({45, false}, {45, true}));
  EXPECT_TRUE(AnswerValuesMatch({0.45, false}, {45, true}));
  EXPECT_FALSE(AnswerValuesMatch({0.45, false}, {45, false}));
}

}  // namespace
}  // namespace moerl
