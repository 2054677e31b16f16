#include "dataset/gsm8k.h"

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

  auto no_marker = ParseGsm8kRow(R"({"question": "q", "answer": "5"})", "a.jsonl", 4);
  EXPECT_EQ(no_marker.status().message(),
            "a.jsonl:4: answer has no final \"#### <number>\" line");
}

// Every row of the real GSM8K test split parses. Needs ../shared/data.
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
