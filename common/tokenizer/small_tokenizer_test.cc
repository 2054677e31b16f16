// The trained tokenizer of the embedded default model
// (data/moerl-gsm8k-bpe.json, tools/tokenizer/train_small_bpe.py) against
// Hugging Face, and the loaders' handling of both merge formats and of bad
// files.
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/golden_util.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/unicode_text.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using nlohmann::json;

constexpr char kSmallPath[] = "common/tokenizer/data/moerl-gsm8k-bpe.json";

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

std::string WriteJson(const std::string& name, const json& j) {
  const std::string path = TempPath(name);
  std::ofstream(path) << j.dump();
  return path;
}

json SmallJson() {
  auto text = ReadFileToString(kSmallPath);
  EXPECT_TRUE(text.ok()) << text.status();
  return json::parse(*text);
}

TEST(SmallTokenizer, MatchesHuggingFaceOnItsGoldenCorpus) {
  auto tok = Tokenizer::FromTokenizerJson(kSmallPath);
  ASSERT_TRUE(tok.ok()) << tok.status();
  tokenizer_testing::ExpectMatchesGoldenCases(*tok, "small_cases.jsonl", 500, /*nfc_round_trip=*/false);
}

TEST(SmallTokenizer, HasQwenChatMarkersAsSingleIdsAndStopsOnImEnd) {
  auto tok = Tokenizer::FromTokenizerJson(kSmallPath);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->vocab_size(), 4096);
  ChatOptions options;
  options.enable_thinking = false;
  const std::vector<int32_t> ids = tok->Encode(RenderChatPrompt("Hi", options));
  const int32_t im_start = *tok->TokenToId("<|im_start|>");
  const int32_t im_end = *tok->TokenToId("<|im_end|>");
  EXPECT_EQ(ids.front(), im_start);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_end), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *tok->TokenToId("<think>")), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *tok->TokenToId("</think>")), 1);
  EXPECT_EQ(tok->eos_id(), im_end);
  EXPECT_EQ(tok->stop_ids(), (std::vector<int32_t>{im_end, *tok->TokenToId("<|endoftext|>")}));
}

// tokenizers >= 0.20 writes merges as [a, b]; older files as "a b".
TEST(FromTokenizerJson, ReadsBothMergeFormatsToTheSameIds) {
  json j = SmallJson();
  ASSERT_TRUE(j["model"]["merges"][0].is_array());
  json old_style = j;
  for (json& m : old_style["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  auto a = Tokenizer::FromTokenizerJson(kSmallPath);
  auto b = Tokenizer::FromTokenizerJson(WriteJson("old_merges.json", old_style));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  const std::string text = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72 日本 😀";
  EXPECT_EQ(a->Encode(text), b->Encode(text));
}

TEST(FromTokenizerJson, RejectsOtherPipelinesNamingTheKey) {
  struct Case {
    const char* key_path;
    std::function<void(json&)> edit;
  };
  const std::vector<Case> cases = {
      {"normalizer", [](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }},
      {"pre_tokenizer.pretokenizers[0].pattern", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+"; }},
      {"pre_tokenizer.pretokenizers[1].add_prefix_space",
       [](json& j) { j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true; }},
      {"model.byte_fallback", [](json& j) { j["model"]["byte_fallback"] = true; }},
      {"model.type", [](json& j) { j["model"]["type"] = "WordPiece"; }},
      {"added_tokens[0].lstrip", [](json& j) { j["added_tokens"][0]["lstrip"] = true; }},
  };
  for (const Case& c : cases) {
    json j = SmallJson();
    c.edit(j);
    auto tok = Tokenizer::FromTokenizerJson(WriteJson("edited.json", j));
    ASSERT_FALSE(tok.ok()) << c.key_path;
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kUnimplemented) << tok.status();
    EXPECT_NE(tok.status().message().find(c.key_path), absl::string_view::npos) << tok.status();
  }
}

TEST(FromTokenizerJson, BadFilesAreErrorsWithLocations) {
  auto missing = Tokenizer::FromTokenizerJson(TempPath("does_not_exist.json"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  const std::string truncated = TempPath("truncated.json");
  std::ofstream(truncated) << "{\"model\": {\"vocab\": {\"a\": 1,";
  auto bad = Tokenizer::FromTokenizerJson(truncated);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("byte"), absl::string_view::npos) << bad.status();

  json j = SmallJson();
  j["model"]["merges"][7] = "onlyone";
  auto merge = Tokenizer::FromTokenizerJson(WriteJson("bad_merge.json", j));
  ASSERT_FALSE(merge.ok());
  EXPECT_NE(merge.status().message().find("model.merges[7]"), absl::string_view::npos) << merge.status();

  json k = SmallJson();
  k["model"]["vocab"]["Ġt"] = "zero";
  auto vocab = Tokenizer::FromTokenizerJson(WriteJson("bad_vocab.json", k));
  ASSERT_FALSE(vocab.ok());
  EXPECT_NE(vocab.status().message().find("Ġt"), absl::string_view::npos) << vocab.status();
}

// A base model's tokenizer_config.json beside tokenizer.json names
// <|endoftext|> as EOS; the stop ids then hold it once.
TEST(FromTokenizerJson, TakesEosFromTokenizerConfigBesideIt) {
  const std::string dir = TempPath("with_config");
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  std::ofstream(dir + "/tokenizer.json") << SmallJson().dump();
  std::ofstream(dir + "/tokenizer_config.json") << R"({"eos_token": "<|endoftext|>"})";
  auto tok = Tokenizer::FromTokenizerJson(dir + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const int32_t endoftext = *tok->TokenToId("<|endoftext|>");
  EXPECT_EQ(tok->eos_id(), endoftext);
  EXPECT_EQ(tok->stop_ids(), std::vector<int32_t>{endoftext});

  std::ofstream(dir + "/tokenizer_config.json") << R"({"eos_token": "<|no_such_token|>"})";
  auto bad = Tokenizer::FromTokenizerJson(dir + "/tokenizer.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("<|no_such_token|>"), absl::string_view::npos) << bad.status();
}

TEST(FromVocabMerges, MissingDirectoryIsNotFound) {
  auto tok = Tokenizer::FromVocabMerges(TempPath("no_such_dir"));
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(tok.status().message().find("vocab.json"), absl::string_view::npos);
}

TEST(FromVocabMerges, BadMergeLineIsReportedWithItsLineNumber) {
  json j = SmallJson();
  const std::string dir = TempPath("vm");
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  std::ofstream(dir + "/vocab.json") << j["model"]["vocab"].dump();
  std::ofstream(dir + "/tokenizer_config.json") << R"({"added_tokens_decoder": {}, "eos_token": null})";
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\nĠ t\nbroken_line\n";
  auto tok = Tokenizer::FromVocabMerges(dir);
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("merges.txt:3"), absl::string_view::npos) << tok.status();
}

TEST(FromVocabMerges, BadVocabEntryIsReportedWithItsToken) {
  const std::string dir = TempPath("vm_bad_vocab");
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  std::ofstream(dir + "/vocab.json") << R"({"a": 0, "b": "one"})";
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\n";
  std::ofstream(dir + "/tokenizer_config.json") << "{}";
  auto tok = Tokenizer::FromVocabMerges(dir);
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("[\"b\"]"), absl::string_view::npos) << tok.status();

  std::ofstream(dir + "/vocab.json") << R"({"a": 0, "b": )";
  tok = Tokenizer::FromVocabMerges(dir);
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("byte"), absl::string_view::npos) << tok.status();
}

TEST(FromTokenizerJson, FarOutIdIsAnErrorNotAGiantAllocation) {
  json j = SmallJson();
  j["model"]["vocab"]["Ġfarout"] = 2000000000;
  auto far = Tokenizer::FromTokenizerJson(WriteJson("far_id.json", j));
  ASSERT_FALSE(far.ok());
  EXPECT_NE(far.status().message().find("2000000000"), absl::string_view::npos) << far.status();

  j["model"]["vocab"]["Ġfarout"] = 4294967296;  // does not fit int32: never truncated
  auto wide = Tokenizer::FromTokenizerJson(WriteJson("wide_id.json", j));
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.status().message().find("Ġfarout"), absl::string_view::npos) << wide.status();
}

// Copies share one model and one BPE cache; concurrent Encode must give the
// single-threaded ids.
TEST(Encode, ConcurrentCallsOnCopiesGiveTheSameIds) {
  auto tok = Tokenizer::FromTokenizerJson(kSmallPath);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto lines = tokenizer_testing::ReadTestdataLines("small_cases.jsonl");
  ASSERT_TRUE(lines.ok()) << lines.status();
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> want;
  for (const std::string& line : *lines) {
    const json c = json::parse(line);
    texts.push_back(c["text"]);
    want.push_back(c["ids"].get<std::vector<int32_t>>());
  }
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t, copy = *tok] {
      for (size_t i = 0; i < texts.size(); ++i) {
        const size_t k = (i * 7 + t * 131) % texts.size();  // different orders
        mismatches[t] += copy.Encode(texts[k]) != want[k];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(Encode, InvalidUtf8IsEncodedAsReplacementCharacters) {
  auto tok = Tokenizer::FromTokenizerJson(kSmallPath);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->Encode("a\xFF" "b"), tok->Encode("a\uFFFD" "b"));
  auto text = tok->Decode(tok->Encode("a\xFF" "b"));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "a\uFFFD" "b");
}

}  // namespace
}  // namespace moerl
