// Qwen3's tokenizer against Hugging Face `tokenizers`: every case in the
// fixtures (tools/tokenizer/make_golden_fixtures.py) must give identical ids,
// decode identically, and round-trip.
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/testing/shared_data.h"
#include "common/tokenizer/golden_util.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/unicode_text.h"
#include "common/tokenizer/qwen_fixture.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using nlohmann::json;
using tokenizer_testing::FirstDifference;
using tokenizer_testing::IdsToString;

// Loads the 151k-token vocabulary once for the whole suite.
class QwenGoldenTest : public tokenizer_testing::QwenTokenizerTest {
 protected:
  void SetUp() override {
    QwenTokenizerTest::SetUp();
    tokenizer_ = shared_;
  }
  const Tokenizer* tokenizer_ = nullptr;
};

std::vector<int32_t> IdsOf(const json& j) { return j.get<std::vector<int32_t>>(); }

TEST_F(QwenGoldenTest, KnownIdsFromTheSpec) {
  EXPECT_EQ(tokenizer_->Encode("Hello world"), (std::vector<int32_t>{9707, 1879}));
  EXPECT_EQ(tokenizer_->Encode(" Hello world"), (std::vector<int32_t>{21927, 1879}));
  EXPECT_EQ(tokenizer_->Encode("You are a helpful assistant."),
            (std::vector<int32_t>{2610, 525, 264, 10950, 17847, 13}));
  EXPECT_EQ(tokenizer_->Encode("<think>\n\n</think>\n\n"), (std::vector<int32_t>{151667, 271, 151668, 271}));
  EXPECT_EQ(tokenizer_->Encode("你好"), (std::vector<int32_t>{108386}));
}

TEST_F(QwenGoldenTest, EosStopIdsAndVocabSize) {
  EXPECT_EQ(tokenizer_->eos_id(), 151645);
  EXPECT_EQ(tokenizer_->stop_ids(), (std::vector<int32_t>{151645, 151643}));
  EXPECT_EQ(tokenizer_->vocab_size(), 151669);
  EXPECT_EQ(tokenizer_->added_tokens().size(), 26u);
  EXPECT_TRUE(tokenizer_->IsSpecial(151644));
  EXPECT_FALSE(tokenizer_->IsSpecial(151667));  // <think> is not special
}

TEST_F(QwenGoldenTest, CorpusIdsDecodeAndRoundTripMatchHuggingFace) {
  tokenizer_testing::ExpectMatchesGoldenCases(*tokenizer_, "qwen_cases.jsonl", 2000, /*nfc_round_trip=*/true);
}

// All 1319 GSM8K test questions and answers: count and hash of HF's ids for
// every one, and the full id list for the first rows.
TEST_F(QwenGoldenTest, AllGsm8kTestRowsMatchHuggingFace) {
  const std::string relative = "data/gsm8k/test.jsonl";
  const std::string path = SharedDataPath(relative);
  ASSERT_FALSE(path.empty()) << MissingSharedDataMessage(relative);
  auto file = ReadFileToString(path);
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<json> rows;
  for (absl::string_view line : absl::StrSplit(*file, '\n')) {
    if (!line.empty()) rows.push_back(json::parse(line));
  }
  auto expected = tokenizer_testing::ReadTestdataLines("qwen_gsm8k.tsv");
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_EQ(expected->size(), rows.size() * 2);
  int failures = 0;
  size_t full_checked = 0;
  for (const std::string& line : *expected) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    ASSERT_EQ(f.size(), 6u) << line;
    size_t row;
    ASSERT_TRUE(absl::SimpleAtoi(f[0], &row));
    const std::string text = rows.at(row)[f[1]];
    ASSERT_EQ(absl::StrCat(absl::Hex(tokenizer_testing::Fnv1a64(text), absl::kZeroPad16)), f[2])
        << "row " << row << " " << f[1] << ": the GSM8K text differs from the one the fixture was made from";
    const std::vector<int32_t> got = tokenizer_->Encode(text);
    const std::string got_hash = absl::StrCat(absl::Hex(tokenizer_testing::IdsFnv1a64(got), absl::kZeroPad16));
    if (std::to_string(got.size()) != f[3] || got_hash != f[4]) {
      ++failures;
      ADD_FAILURE() << "row " << row << " " << f[1] << ": " << got.size() << " ids (HF " << f[3] << "), hash "
                    << got_hash << " (HF " << f[4] << "); ours " << IdsToString(got);
    }
    if (!f[5].empty()) {
      std::vector<int32_t> want;
      for (absl::string_view id : absl::StrSplit(f[5], ' ')) {
        int32_t v;
        ASSERT_TRUE(absl::SimpleAtoi(id, &v));
        want.push_back(v);
      }
      EXPECT_EQ(got, want) << "row " << row << " " << f[1] << " first difference at " << FirstDifference(got, want);
      ++full_checked;
    }
    auto decoded = tokenizer_->Decode(got);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, tokenizer::NfcNormalize(text)) << "round trip of row " << row;
    if (failures >= 10) break;
  }
  EXPECT_EQ(failures, 0);
  EXPECT_GT(full_checked, 0u);
}

TEST_F(QwenGoldenTest, DecodeOfArbitraryIdsMatchesHuggingFace) {
  auto lines = tokenizer_testing::ReadTestdataLines("qwen_decode.jsonl");
  ASSERT_TRUE(lines.ok()) << lines.status();
  for (size_t i = 0; i < lines->size(); ++i) {
    const json c = json::parse((*lines)[i]);
    const std::vector<int32_t> ids = IdsOf(c["ids"]);
    auto text = tokenizer_->Decode(ids);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, c["text"].get<std::string>()) << "case " << i << " ids " << IdsToString(ids);
    auto skipped = tokenizer_->Decode(ids, DecodeOptions{/*skip_special_tokens=*/true});
    ASSERT_TRUE(skipped.ok()) << skipped.status();
    EXPECT_EQ(*skipped, c["text_skip_special"].get<std::string>()) << "case " << i;
  }
}

// tokenizer.json at Qwen's scale: the same vocabulary, merges (in the
// [left, right] form of tokenizers >= 0.20) and added tokens, written the way
// tokenizers lays the file out, must load and encode the corpus identically.
TEST_F(QwenGoldenTest, TokenizerJsonOfTheSameFilesEncodesIdentically) {
  const std::string dir = SharedDataPath("data/qwen-tokenizer");
  auto vocab_text = ReadFileToString(dir + "/vocab.json");
  auto merges_text = ReadFileToString(dir + "/merges.txt");
  ASSERT_TRUE(vocab_text.ok() && merges_text.ok());
  json merges = json::array();
  for (absl::string_view line : absl::StrSplit(*merges_text, '\n')) {
    if (line.empty() || absl::StartsWith(line, "#version")) continue;
    std::vector<std::string> sides = absl::StrSplit(line, ' ');
    merges.push_back(sides);
  }
  json added = json::array();
  for (const AddedToken& t : tokenizer_->added_tokens()) {
    added.push_back({{"id", t.id}, {"content", t.content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", t.special}});
  }
  const json pattern = {{"Regex",
                         "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                         "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}};
  const json root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", pattern}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", json::parse(*vocab_text)}, {"merges", merges}}}};
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp ? tmp : "/tmp") + "/qwen_tokenizer.json";
  std::ofstream(path) << root.dump();
  auto from_json = Tokenizer::FromTokenizerJson(path);
  ASSERT_TRUE(from_json.ok()) << from_json.status();
  EXPECT_EQ(from_json->vocab_size(), tokenizer_->vocab_size());
  EXPECT_EQ(from_json->eos_id(), 151645);  // no tokenizer_config.json beside it: <|im_end|> by default
  auto lines = tokenizer_testing::ReadTestdataLines("qwen_cases.jsonl");
  ASSERT_TRUE(lines.ok()) << lines.status();
  for (size_t i = 0; i < lines->size(); ++i) {
    const json c = json::parse((*lines)[i]);
    ASSERT_EQ(from_json->Encode(c["text"].get<std::string>()), IdsOf(c["ids"])) << "case " << i;
  }
}

TEST_F(QwenGoldenTest, DecodeRejectsPaddingAndNegativeIds) {
  for (int32_t bad : {-1, 151669, 151935, 1 << 30}) {
    auto text = tokenizer_->Decode(std::vector<int32_t>{9707, bad});
    ASSERT_FALSE(text.ok()) << bad;
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(text.status().message().find("ids[1]"), absl::string_view::npos) << text.status();
  }
}

// Hugging Face's decode drops ids that name no token:
// decode([9707, 151822, 11, 151645, 152000]) == "Hello,<|im_end|>".
TEST_F(QwenGoldenTest, DecodeSkipsUnknownIdsWhenAsked) {
  const std::vector<int32_t> ids = {9707, 151822, 11, 151645, 152000, -1};
  auto text = tokenizer_->Decode(ids, {.skip_unknown_ids = true});
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "Hello,<|im_end|>");
  auto skipped = tokenizer_->Decode(ids, {.skip_special_tokens = true, .skip_unknown_ids = true});
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_EQ(*skipped, "Hello,");
}

}  // namespace
}  // namespace moerl
