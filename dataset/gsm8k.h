// GSM8K rows: parsing the original jsonl files (one object per line with
// string fields "question" and "answer", the answer ending in "#### <gold>").
//
//   absl::StatusOr<Gsm8kRow> row = ParseGsm8kRow(line, "train.jsonl", 17);
//   row->gold_answer  // "72", the text after the final "####"
//
//   Gsm8kLoadOptions options;
//   options.skip_malformed = true;           // default: the first bad row is the error
//   absl::StatusOr<Gsm8kFile> file = LoadGsm8kFile("train.jsonl", options);
//   file->rows.size(), file->skipped_rows
//
// A malformed row (bad JSON, a missing or non-string field, no "####" line,
// nothing after it) is an InvalidArgument error naming the file and the
// 1-based line. Blank lines are ignored. Thread-safe; no state.
#ifndef MOERL_DATASET_GSM8K_H_
#define MOERL_DATASET_GSM8K_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moerl {

struct Gsm8kRow {
  std::string question;
  std::string answer;       // worked solution, ending with "#### <gold>"
  std::string gold_answer;  // text after the last "####", trimmed
  int64_t line_number = 0;  // 1-based line in the source file
};

// Parses one jsonl line. `file` and `line_number` (1-based) label errors.
absl::StatusOr<Gsm8kRow> ParseGsm8kRow(absl::string_view line, absl::string_view file,
                                       int64_t line_number);

struct Gsm8kLoadOptions {
  // false: the first malformed row is the error. true: malformed rows are
  // skipped and counted in Gsm8kFile::skipped_rows.
  bool skip_malformed = false;
};

struct Gsm8kFile {
  std::vector<Gsm8kRow> rows;
  int64_t skipped_rows = 0;
  // The first skipped row's error, for the log ("train.jsonl:12: not valid JSON").
  absl::Status first_skipped;
};

absl::StatusOr<Gsm8kFile> LoadGsm8kFile(const std::string& path,
                                        const Gsm8kLoadOptions& options = {});

}  // namespace moerl

#endif  // MOERL_DATASET_GSM8K_H_
