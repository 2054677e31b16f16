#include "reward/answer_extraction.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moerl {
namespace {

using Texts = std::vector<std::string>;

TEST(ExtractAnswer, BoxedWinsOverEverythingElse) {
  ExtractedAnswer a = ExtractAnswer("The answer is 5.\n#### 6\n\\boxed{7} and then 8");
  EXPECT_EQ(a.source, AnswerSource::kBoxed);
  EXPECT_EQ(a.texts, Texts{"7"});
}

TEST(ExtractAnswer, ReturnsEveryBoxWithNestedBraces) {
  ExtractedAnswer a = ExtractAnswer("\\boxed{\\frac{1}{2}} or \\boxed{ 3 }");
  EXPECT_EQ(a.texts, (Texts{"\\frac{1}{2}", "3"}));
}

TEST(ExtractAnswer, IgnoresEmptyAndUnterminatedBoxes) {
  ExtractedAnswer empty = ExtractAnswer("so 4 + 5 = 9. The answer is \\boxed{}.");
  EXPECT_EQ(empty.source, AnswerSource::kLastNumber);
  EXPECT_EQ(empty.texts, Texts{"9"});
  ExtractedAnswer open = ExtractAnswer("so 4 + 5 = 9. The answer is \\boxed{10");
  EXPECT_EQ(open.texts, Texts{"9"});
}

TEST(ExtractAnswer, AnchorPhrasesComeSecond) {
  EXPECT_EQ(ExtractAnswer("The answer is 17. Then I add 1 to get 18").texts, Texts{"17"});
  EXPECT_EQ(ExtractAnswer("Final answer: $1,250").texts, Texts{"1,250"});
  EXPECT_EQ(ExtractAnswer("**Answer:** 42\nchecking: 40 + 2").texts, Texts{"42"});
  EXPECT_EQ(ExtractAnswer("The answer is 3 + 4 = 7.").texts, Texts{"7"});
  EXPECT_EQ(ExtractAnswer("The answer is:\n12 apples").texts, Texts{"12"});
  EXPECT_EQ(ExtractAnswer("The answer is $\\frac{3}{4}$.").texts, Texts{"\\frac{3}{4}"});
  EXPECT_EQ(ExtractAnswer("The answer is 3 and 4.").source, AnswerSource::kAnchor);
}

TEST(ExtractAnswer, ColonAnchorsWinOverBareAnchors) {
  ExtractedAnswer a = ExtractAnswer("Answer: 5\nI double-checked the answer using 6 tries");
  EXPECT_EQ(a.texts, Texts{"5"});
}

TEST(ExtractAnswer, HashesComeThird) {
  ExtractedAnswer a = ExtractAnswer("3 + 4 = 7\n#### 7\nextra 9");
  EXPECT_EQ(a.source, AnswerSource::kHashes);
  EXPECT_EQ(a.texts, Texts{"7"});
}

TEST(ExtractAnswer, LastNumberIsTheFallback) {
  ExtractedAnswer a = ExtractAnswer("She has 3 apples, buys -2.5 more, total 1,000,000.");
  EXPECT_EQ(a.source, AnswerSource::kLastNumber);
  EXPECT_EQ(a.texts, Texts{"1,000,000"});
  EXPECT_EQ(ExtractAnswer("x = -7").texts, Texts{"-7"});
  // Ending in arithmetic, the whole expression is the answer (math-verify).
  EXPECT_EQ(ExtractAnswer("5-3").texts, Texts{"5-3"});
  EXPECT_EQ(ExtractAnswer("5-3").source, AnswerSource::kLastExpression);
  EXPECT_EQ(ExtractAnswer("so 5-3 is\n3").texts, Texts{"3"});
  EXPECT_EQ(ExtractAnswer("it is 45%.").texts, Texts{"45%"});
  EXPECT_EQ(ExtractAnswer("about 3/4 of them").texts, Texts{"3/4"});
}

TEST(ExtractAnswer, SkipsNumbersGluedToWordsAndTimes) {
  EXPECT_EQ(ExtractAnswer("7 is the answer for x2").texts, Texts{"7"});
  EXPECT_EQ(ExtractAnswer("we meet at 10:30").texts, Texts{"10"});
  EXPECT_EQ(ExtractAnswer("version v1.5").source, AnswerSource::kNone);
}

TEST(ExtractAnswer, FindsNothingInTextWithoutNumbers) {
  EXPECT_EQ(ExtractAnswer("").source, AnswerSource::kNone);
  EXPECT_EQ(ExtractAnswer("I do not know.<|im_end|>").source, AnswerSource::kNone);
  EXPECT_STREQ(AnswerSourceName(AnswerSource::kLastNumber), "last_number");
}

TEST(NextNumberToken, RespectsTheLimit) {
  EXPECT_FALSE(NextNumberToken("abc 12", 0, 4).has_value());
  std::optional<TokenSpan> span = NextNumberToken("abc 12", 0, 5);
  ASSERT_TRUE(span.has_value());
  EXPECT_EQ(span->begin, 4u);
  EXPECT_EQ(span->end, 6u);
}

}  // namespace
}  // namespace moerl
