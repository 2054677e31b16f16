#include "reward/answer_value.h"

#include "gtest/gtest.h"

namespace moerl {
namespace {

double ValueOf(absl::string_view text) {
  std::optional<AnswerValue> v = ParseAnswerValue(text);
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

TEST(ParseAnswerValue, StripsCurrencyUnitsAndPunctuation) {
  EXPECT_EQ(ValueOf("$18"), 18);
  EXPECT_EQ(ValueOf("\\$1,200."), 1200);
  EXPECT_EQ(ValueOf("18 dollars"), 18);
  EXPECT_EQ(ValueOf("18 \\text{ apples per day}"), 18);
  EXPECT_EQ(ValueOf("\xe2\x82\xac" "5"), 5);  // euro sign
  EXPECT_EQ(ValueOf("1{,}000"), 1000);
  EXPECT_EQ(ValueOf("90^\\circ"), 90);
  EXPECT_EQ(ValueOf("x = 7"), 7);
}

TEST(ParseAnswerValue, UnwrapsLatex) {
  EXPECT_EQ(ValueOf("\\text{18}"), 18);
  EXPECT_EQ(ValueOf("\\textbf{\\$18}"), 18);
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
