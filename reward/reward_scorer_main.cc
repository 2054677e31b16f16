// reward_scorer: scores Trajectory messages and writes TrajectoryBatch files
// (see reward/scorer_run.h), or scores one completion.
//
//   reward_scorer --input trajectories.rec --output_dir run/batches --n_samples 4 --batch_size 256
//   reward_scorer --completion 'so \boxed{18}' --gold 18      # prints "reward=1 reason=match"
//
// Exits 0 when done (or stopped by SIGTERM/SIGINT), 1 with one line on
// error, 2 on bad usage.
#include <csignal>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "reward/answer.h"
#include "reward/scorer_run.h"

ABSL_FLAG(std::string, completion, "", "score this one completion (with --gold)");
ABSL_FLAG(std::string, gold, "", "the gold answer for --completion");
ABSL_FLAG(std::string, input, "", "Trajectory messages (interim: protobuf-delimited file)");
ABSL_FLAG(std::string, output_dir, "", "where to write <NNNNNN>.rec TrajectoryBatch files");
ABSL_FLAG(uint32_t, n_samples, 1, "gconfig.n_samples: trajectories per group");
ABSL_FLAG(uint32_t, batch_size, 1, "train_dataset.batch_size: groups per batch");
ABSL_FLAG(bool, group_messages, false, "each message is a one-group TrajectoryBatch");

namespace {
volatile std::sig_atomic_t g_stop = 0;  // set by SIGTERM/SIGINT
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_gold).empty()) {
    const moerl::Score score =
        moerl::ScoreCompletion(absl::GetFlag(FLAGS_completion), absl::GetFlag(FLAGS_gold));
    std::printf("reward=%g reason=%s\n", score.reward, moerl::ScoreReasonName(score.reason));
    return 0;
  }
  moerl::ScorerRunOptions options;
  options.input_path = absl::GetFlag(FLAGS_input);
  options.output_dir = absl::GetFlag(FLAGS_output_dir);
  options.scorer.n_samples = absl::GetFlag(FLAGS_n_samples);
  options.scorer.batch_size = absl::GetFlag(FLAGS_batch_size);
  if (absl::GetFlag(FLAGS_group_messages)) options.scorer.message_kind = moerl::MessageKind::kGroup;
  if (options.input_path.empty()) {
    std::fprintf(stderr, "reward_scorer: --input <file> (or --completion/--gold) is required\n");
    return 2;
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  moerl::ScorerReport report;
  const absl::Status status = moerl::RunScorer(options, [] { return g_stop != 0; }, &report);
  if (!status.ok()) {
    std::fprintf(stderr, "reward_scorer: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
