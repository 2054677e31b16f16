// RunScorer: what the reward_scorer binary does, as a library call.
//
//   ScorerRunOptions options;
//   options.input_path = "trajectories.rec";   // INTERIM: a file instead of the ring
//   options.output_dir = run_dir + "/batches";
//   options.scorer.n_samples = 4;
//   options.scorer.batch_size = 256;
//   ScorerReport report;
//   MOERL_RETURN_IF_ERROR(RunScorer(options, should_stop, &report));
//
// Until //common/transport's ShmRing lands the binary reads Trajectory (or
// one-group TrajectoryBatch) messages from a protobuf-delimited file through
// FileMessageSource; attaching to the ring replaces only that line.
// Logs a summary (trajectories, reasons, batches). Thread: the caller's.
#ifndef MOERL_REWARD_SCORER_RUN_H_
#define MOERL_REWARD_SCORER_RUN_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "reward/scorer.h"

namespace moerl {

struct ScorerRunOptions {
  ScorerConfig scorer;
  std::string input_path;
  std::string output_dir;
};

absl::Status RunScorer(const ScorerRunOptions& options, const std::function<bool()>& should_stop,
                       ScorerReport* report);

}  // namespace moerl

#endif  // MOERL_REWARD_SCORER_RUN_H_
