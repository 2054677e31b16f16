// GSM8K rows: parsing one line of the original jsonl files.
//
//   absl::StatusOr<Gsm8kRow> row = ParseGsm8kRow(line, "train.jsonl", 17);
//   row->gold_answer  // "72", the text after the final "####"
//
// A malformed row is an InvalidArgument error that names the file and the
// 1-based line. Thread-safe; no state.
#ifndef MOERL_DATASET_GSM8K_H_
#define MOERL_DATASET_GSM8K_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moerl {

struct Gsm8kRow {
  std::string question;
  std::string answer;       // worked solution, ending with "#### <gold>"
  std::string gold_answer;  // text after the last "####", trimmed
};

// Parses one jsonl line with string fields "question" and "answer".
// `file` and `line_number` (1-based) only label errors.
absl::StatusOr<Gsm8kRow> ParseGsm8kRow(absl::string_view line, absl::string_view file,
                                       int64_t line_number);

// Reads a whole jsonl file; the first malformed row is the error.
absl::StatusOr<std::vector<Gsm8kRow>> LoadGsm8kFile(const std::string& path);

}  // namespace moerl

#endif  // MOERL_DATASET_GSM8K_H_
