#include "common/tokenizer/pretokenizer.h"

#include "gtest/gtest.h"

namespace moerl {
namespace tokenizer {
namespace {

using Pieces = std::vector<std::string>;

TEST(SplitPieces, DigitsAreSinglePieces) { EXPECT_EQ(SplitPiecesToStrings("2024"), (Pieces{"2", "0", "2", "4"})); }

TEST(SplitPieces, OneLeadingNonLetterJoinsTheWord) {
  EXPECT_EQ(SplitPiecesToStrings("Hello world,word\tx"), (Pieces{"Hello", " world", ",word", "\tx"}));
}

TEST(SplitPieces, ContractionsMatchInAnyCaseIncludingLongS) {
  EXPECT_EQ(SplitPiecesToStrings("I'M we'Re"), (Pieces{"I", "'M", " we", "'Re"}));
  EXPECT_EQ(SplitPiecesToStrings("'\u017Fa"), (Pieces{"'\u017F", "a"}));
  EXPECT_EQ(SplitPiecesToStrings("'x"), (Pieces{"'x"}));
}

TEST(SplitPieces, PunctuationRunTakesOneSpaceBeforeAndNewlinesAfter) {
  EXPECT_EQ(SplitPiecesToStrings("a ...\n\nb"), (Pieces{"a", " ...\n\n", "b"}));
}

TEST(SplitPieces, WhitespaceRunEndsAfterItsLastNewline) {
  EXPECT_EQ(SplitPiecesToStrings("a \n \n  b"), (Pieces{"a", " \n \n", " ", " b"}));
}

TEST(SplitPieces, LastSpaceOfARunJoinsTheNextWord) {
  EXPECT_EQ(SplitPiecesToStrings("a    b"), (Pieces{"a", "   ", " b"}));
  EXPECT_EQ(SplitPiecesToStrings("a  1"), (Pieces{"a", " ", " ", "1"}));
  EXPECT_EQ(SplitPiecesToStrings("a   "), (Pieces{"a", "   "}));
}

TEST(SplitPieces, CombiningMarksAreNotLetters) {
  EXPECT_EQ(SplitPiecesToStrings("e\u0301x"), (Pieces{"e", "\u0301x"}));
}

TEST(SplitPieces, EmptyTextHasNoPieces) { EXPECT_TRUE(SplitPiecesToStrings("").empty()); }

}  // namespace
}  // namespace tokenizer
}  // namespace moerl
