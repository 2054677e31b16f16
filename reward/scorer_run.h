// The reward_scorer binary as library calls: load the configuration, then
// score.
//
//   MOERL_ASSIGN_OR_RETURN(ScorerRunOptions options, LoadScorerRunOptions(args));
//   ScorerReport report;
//   MOERL_RETURN_IF_ERROR(RunScorer(options, should_stop, &report));
//
// Input, exactly one of:
//   ring        an existing ShmRing (by name; created by the caller in
//               acknowledged mode, e.g. `ring create NAME --mode=ack`),
//               attached as a consumer; a plain-mode ring is refused, since
//               a scorer that dies would lose what it held
//   input_path  a record file of Trajectory (or, with MessageKind::kGroup,
//               one-group TrajectoryBatch) messages (FileMessageSource)
// Output: output_dir/<NNNNNN>.rec record files, one TrajectoryBatch each
// (DirectoryBatchSink; the directory and its parents are created).
// Logs a summary (trajectories, reasons, batches). Thread: the caller's.
#ifndef MOERL_REWARD_SCORER_RUN_H_
#define MOERL_REWARD_SCORER_RUN_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "reward/scorer.h"

namespace moerl {

struct ScorerRunOptions {
  ScorerConfig scorer;
  std::string ring;
  std::string input_path;
  std::string output_dir;
};

// `--config <yaml> key=value ...` (args without argv[0]) -> validated
// options (keys: reward/scorer_settings.h).
absl::StatusOr<ScorerRunOptions> LoadScorerRunOptions(const std::vector<std::string>& args);

absl::Status RunScorer(const ScorerRunOptions& options, const std::function<bool()>& should_stop,
                       ScorerReport* report);

}  // namespace moerl

#endif  // MOERL_REWARD_SCORER_RUN_H_
