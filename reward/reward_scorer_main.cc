// reward_scorer: scores one completion against a gold answer.
// (Scoring Trajectory messages from a ring arrives with the GSM8K issue.)
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "reward/answer.h"

ABSL_FLAG(std::string, completion, "", "the model's completion");
ABSL_FLAG(std::string, gold, "", "the gold answer");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_gold).empty()) {
    std::fprintf(stderr, "reward_scorer: --gold <answer> is required\n");
    return 2;
  }
  moerl::Score score =
      moerl::ScoreCompletion(absl::GetFlag(FLAGS_completion), absl::GetFlag(FLAGS_gold));
  std::printf("reward=%g reason=%s\n", score.reward, moerl::ScoreReasonName(score.reason));
  return 0;
}
