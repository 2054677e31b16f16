// dataset_feeder: reads GSM8K jsonl and reports what it would publish.
// (Publishing Prompt messages into a ring arrives with the GSM8K issue.)
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/logging.h"
#include "dataset/gsm8k.h"

ABSL_FLAG(std::string, input, "", "GSM8K jsonl file to read");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string input = absl::GetFlag(FLAGS_input);
  if (input.empty()) {
    std::fprintf(stderr, "dataset_feeder: --input <file.jsonl> is required\n");
    return 2;
  }
  auto rows = moerl::LoadGsm8kFile(input);
  if (!rows.ok()) {
    std::fprintf(stderr, "dataset_feeder: %s\n", std::string(rows.status().message()).c_str());
    return 1;
  }
  MOERL_LOG(INFO) << "read " << rows->size() << " GSM8K rows from " << input;
  for (const moerl::Gsm8kRow& row : *rows) std::printf("%s\n", row.gold_answer.c_str());
  return 0;
}
