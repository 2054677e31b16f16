#include "common/tokenizer/pretokenizer.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/tokenizer/golden_util.h"
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

size_t CodepointCount(absl::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Piece boundaries (not just ids, which can coincide for different splits)
// against Hugging Face's Split pre-tokenizer on the whole golden corpus.
TEST(SplitPieces, MatchesHuggingFaceSplitOnTheGoldenCorpus) {
  auto cases = tokenizer_testing::ReadTestdataLines("qwen_cases.jsonl");
  ASSERT_TRUE(cases.ok()) << cases.status();
  auto pieces_file = ReadFileToString("common/tokenizer/testdata/qwen_pieces.txt");
  ASSERT_TRUE(pieces_file.ok()) << pieces_file.status();
  std::vector<std::string> lines = absl::StrSplit(*pieces_file, '\n');
  ASSERT_FALSE(lines.empty());
  lines.erase(lines.begin());              // the comment line
  if (lines.back().empty()) lines.pop_back();  // after the final newline
  ASSERT_EQ(lines.size(), cases->size());
  int failures = 0;
  for (size_t i = 0; i < lines.size() && failures < 10; ++i) {
    const std::string text = nlohmann::json::parse((*cases)[i])["text"];
    std::vector<std::string> ours;
    for (const std::string& piece : SplitPiecesToStrings(text)) ours.push_back(std::to_string(CodepointCount(piece)));
    const std::string got = absl::StrJoin(ours, " ");
    if (got != lines[i]) {
      ++failures;
      ADD_FAILURE() << "case " << i << " " << nlohmann::json(text).dump() << "\n ours " << got << "\n HF   " << lines[i];
    }
  }
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace tokenizer
}  // namespace moerl
