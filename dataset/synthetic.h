// Synthetic GSM8K-format problems for the embedded default: templated
// arithmetic word problems with worked solutions (GSM8K's "<<a+b=c>>"
// calculator annotations) ending in "#### N", written as the same jsonl.
//
//   SyntheticOptions options = SyntheticLevel(0);   // 1 step, numbers 1..9, "+" only
//   options.seed = 7;
//   std::vector<SyntheticProblem> problems = GenerateSynthetic(options, /*count=*/1000);
//   std::string line = SyntheticProblemJson(problems[0]);
//   // {"question": "Tom has 3 apples. He gets 4 more apples. How many apples does Tom have now?",
//   //  "answer": "Tom has 3 + 4 = <<3+4=7>>7 apples now.\n#### 7"}
//
// Difficulty: `steps` operations on a running count (each one sentence of
// the question and one line of the solution), operands in [1, max_number],
// and the allowed operations. Every intermediate and final value is a
// non-negative integer; divisions are exact. Levels 0-1 (one step, one-digit
// numbers) are short enough for the tiny CPU model to learn.
//
// Deterministic: the same options give the same problems everywhere.
// Thread-safe; no state.
#ifndef MOERL_DATASET_SYNTHETIC_H_
#define MOERL_DATASET_SYNTHETIC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace moerl {

struct SyntheticOptions {
  uint64_t seed = 1;
  int min_steps = 1;
  int max_steps = 1;
  int64_t max_number = 9;
  bool allow_subtract = false;
  bool allow_multiply = false;
  bool allow_divide = false;

  absl::Status Validate() const;
};

// Presets 0 (easiest) .. kMaxSyntheticLevel.
//   0: 1 step, 1..9, +        1: 1 step, 1..9, + -       2: 2 steps, 1..20, + -
//   3: 2 steps, 1..20, + - x  4: 3 steps, 1..100, + - x  5: 4 steps, 1..1000, + - x /
inline constexpr int kMaxSyntheticLevel = 5;
SyntheticOptions SyntheticLevel(int level);

struct SyntheticProblem {
  std::string question;
  std::string answer;  // worked solution ending in "#### <gold>"
  int64_t gold = 0;
};

std::vector<SyntheticProblem> GenerateSynthetic(const SyntheticOptions& options, int64_t count);

// One jsonl line (no trailing newline) with "question" and "answer".
std::string SyntheticProblemJson(const SyntheticProblem& problem);

}  // namespace moerl

#endif  // MOERL_DATASET_SYNTHETIC_H_
