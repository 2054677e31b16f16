// ScorerSettings: the configuration keys the reward_scorer binary reads
// (AReaL names where AReaL has them), bound to one small typed struct.
//
//   ScorerSettings settings;
//   MOERL_RETURN_IF_ERROR(settings.Load(tree));   // Declare + Read + Validate
//   ScorerRunOptions options = settings.ToRunOptions();
//
// Keys (docs/config.md, "reward_scorer"):
//   gconfig.n_samples          trajectories per group (>= 1, default 1)
//   train_dataset.batch_size   groups per batch file (>= 1, default 1)
//   experiment_name, trial_name, cluster.fileroot
//                              the default output directory:
//                              <fileroot>/<experiment_name>/<trial_name>/batches
//   reward.ring                ShmRing name to consume (acknowledged mode)
//   reward.input_path          a record file of Trajectory messages instead
//   reward.output_dir          where <NNNNNN>.rec batches go (overrides the default)
//   reward.group_messages      each message is a one-group TrajectoryBatch
//   reward.poll_interval_s     longest single wait on the ring (default 0.2)
//   reward.lenient_units       false (default): verdicts follow math-verify as
//                              AReaL calls it; true: unit words, \text{} and
//                              trailing punctuation around a boxed number are
//                              dropped (reward/answer.h lists the differences)
//   actor.megatron.use_deterministic_algorithms
//                              a reproducible run: the groups of a batch in
//                              group-id order instead of arrival order
// The `reward` section is owned: an unknown reward.* key is an error.
//
// Plain data; thread-compatible.
#ifndef MOERL_REWARD_SCORER_SETTINGS_H_
#define MOERL_REWARD_SCORER_SETTINGS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/config/config_tree.h"
#include "common/config/schema.h"
#include "reward/scorer_run.h"

namespace moerl {

struct ScorerSettings {
  int64_t n_samples = 1;
  int64_t batch_size = 1;
  std::string experiment_name;
  std::string trial_name;
  std::string fileroot = "/tmp/moerl/experiments";
  std::string ring;
  std::string input_path;
  std::string output_dir;
  bool group_messages = false;
  double poll_interval_s = 0.2;
  bool lenient_units = false;
  bool deterministic = false;  // actor.megatron.use_deterministic_algorithms

  void Declare(ConfigSchema* schema);
  // Exactly one input; an output directory, given or derived from valid run names.
  absl::Status Validate() const;
  absl::Status Load(const ConfigTree& tree);

  // reward.output_dir, else <fileroot>/<experiment_name>/<trial_name>/batches.
  std::string OutputDir() const;
  ScorerRunOptions ToRunOptions() const;
};

}  // namespace moerl

#endif  // MOERL_REWARD_SCORER_SETTINGS_H_
