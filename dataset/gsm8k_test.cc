#include "dataset/gsm8k.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "common/testing/shared_data.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

TEST(ParseGsm8kRow, TakesGoldAnswerFromLastMarker) {
  auto row = ParseGsm8kRow(
      R"({"question": "2+3?", "answer": "2+3=<<2+3=5>>5\n#### 5"})", "t.jsonl", 1);
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(row->question, "2+3?");
  EXPECT_EQ(row->gold_answer, "5");
}

TEST(ParseGsm8kRow, ErrorsNameFileAndLine) {
  auto bad_json = ParseGsm8kRow("{not json", "train.jsonl", 12);
  EXPECT_EQ(bad_json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_json.status().message(), "train.jsonl:12: not valid JSON");

  auto missing = ParseGsm8kRow(R"({"question": "q"})", "train.jsonl", 3);
  EXPECT_EQ(missing.status().message(), "train.jsonl:3: expected a string field \"answer\"");

  auto not_object = ParseGsm8kRow("[1, 2]", "train.jsonl", 5);
  EXPECT_EQ(not_object.status().message(), "train.jsonl:5: expected a JSON object");

  auto empty_gold = ParseGsm8kRow(R"({"question": "q", "answer": "5 ####  "})", "a.jsonl", 6);
  EXPECT_EQ(empty_gold.status().message(), "a.jsonl:6: nothing after \"####\" in answer");

  auto no_marker = ParseGsm8kRow(R"({"question": "q", "answer": "5"})", "a.jsonl", 4);
  EXPECT_EQ(no_marker.status().message(),
            "a.jsonl:4: answer has no final \"#### <number>\" line");
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << text;
  return path;
}

constexpr const char* kGoodRow = R"({"question": "q", "answer": "1+1=2\n#### 2"})";

TEST(LoadGsm8kFile, FirstMalformedRowIsTheErrorByDefault) {
  const std::string path =
      WriteFile("bad.jsonl", std::string(kGoodRow) + "\n\n{\"question\": 3}\n" + kGoodRow + "\n");
  absl::StatusOr<Gsm8kFile> file = LoadGsm8kFile(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().message(), path + ":3: expected a string field \"question\"");
}

TEST(LoadGsm8kFile, SkipsAndCountsMalformedRowsWhenAsked) {
  const std::string path = WriteFile(
      "skip.jsonl", std::string(kGoodRow) + "\nnot json\n{\"question\": \"q\", \"answer\": \"2\"}\n" +
                        kGoodRow + "\n");
  Gsm8kLoadOptions options;
  options.skip_malformed = true;
  absl::StatusOr<Gsm8kFile> file = LoadGsm8kFile(path, options);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->rows.size(), 2u);
  EXPECT_EQ(file->skipped_rows, 2);
  EXPECT_EQ(file->rows[1].line_number, 4);
  EXPECT_EQ(file->first_skipped.message(), path + ":2: not valid JSON");
}

TEST(LoadGsm8kFile, MissingFileIsNotFound) {
  EXPECT_EQ(LoadGsm8kFile("/nonexistent/x.jsonl").status().code(), absl::StatusCode::kNotFound);
}

// Every row of the real GSM8K test split parses. Reads third_party/data.
TEST(ParseGsm8kRow, ParsesTheRealTestSplit) {
  const std::string path = SharedDataPath("data/gsm8k/test.jsonl");
  ASSERT_FALSE(path.empty()) << MissingSharedDataMessage("data/gsm8k/test.jsonl");
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    auto row = ParseGsm8kRow(line, path, n);
    ASSERT_TRUE(row.ok()) << row.status();
  }
  EXPECT_EQ(n, 1319);
}

}  // namespace
}  // namespace moerl
