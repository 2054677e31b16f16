// gsm8k_synth: writes synthetic GSM8K-format jsonl (see dataset/synthetic.h).
//
//   gsm8k_synth --level 0 --count 5000 --seed 1 > synthetic_l0.jsonl
//   gsm8k_synth --min_steps 2 --max_steps 3 --max_number 50 --count 100
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "dataset/synthetic.h"

ABSL_FLAG(int, level, 0, "difficulty preset 0 (easiest) .. 5");
ABSL_FLAG(int64_t, count, 1000, "number of problems");
ABSL_FLAG(uint64_t, seed, 1, "seed");
ABSL_FLAG(int, min_steps, 0, "override the level's number of steps (minimum)");
ABSL_FLAG(int, max_steps, 0, "override the level's number of steps (maximum)");
ABSL_FLAG(int64_t, max_number, 0, "override the level's largest operand");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  moerl::SyntheticOptions options = moerl::SyntheticLevel(absl::GetFlag(FLAGS_level));
  options.seed = absl::GetFlag(FLAGS_seed);
  if (absl::GetFlag(FLAGS_min_steps) > 0) options.min_steps = absl::GetFlag(FLAGS_min_steps);
  if (absl::GetFlag(FLAGS_max_steps) > 0) options.max_steps = absl::GetFlag(FLAGS_max_steps);
  if (absl::GetFlag(FLAGS_max_number) > 0) options.max_number = absl::GetFlag(FLAGS_max_number);
  if (absl::Status status = options.Validate(); !status.ok()) {
    std::fprintf(stderr, "gsm8k_synth: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  for (const moerl::SyntheticProblem& p : moerl::GenerateSynthetic(options, absl::GetFlag(FLAGS_count))) {
    std::printf("%s\n", moerl::SyntheticProblemJson(p).c_str());
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}
