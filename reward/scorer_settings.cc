#include "reward/scorer_settings.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/config/names.h"
#include "common/status.h"

namespace moerl {

void ScorerSettings::Declare(ConfigSchema* schema) {
  constexpr int64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
  schema->Int("gconfig.n_samples", &n_samples, "trajectories per group", 1, kMaxU32);
  schema->Int("train_dataset.batch_size", &batch_size, "groups per batch file", 1, kMaxU32);
  schema->String("experiment_name", &experiment_name, "run directory part");
  schema->String("trial_name", &trial_name, "run directory part");
  schema->String("cluster.fileroot", &fileroot, "root of run directories");
  schema->OwnSection("reward");
  schema->String("reward.ring", &ring, "ShmRing name of Trajectory messages (acknowledged)");
  schema->String("reward.input_path", &input_path, "record file of Trajectory messages");
  schema->String("reward.output_dir", &output_dir, "directory of <NNNNNN>.rec batch files");
  schema->Bool("reward.group_messages", &group_messages,
               "each message is a one-group TrajectoryBatch");
  schema->Double("reward.poll_interval_s", &poll_interval_s, "longest single wait on the ring");
  schema->Bool("reward.lenient_units", &lenient_units,
               "drop any unit word, \\text{} and punctuation around a boxed number "
               "(default: math-verify's verdicts)");
  schema->Bool("actor.megatron.use_deterministic_algorithms", &deterministic,
               "a reproducible run: each batch's groups in group-id order, not arrival order");
}

absl::Status ScorerSettings::Validate() const {
  if (ring.empty() == input_path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("give exactly one of reward.ring or reward.input_path; got reward.ring='",
                     ring, "', reward.input_path='", input_path, "'"));
  }
  if (!(poll_interval_s > 0) || !std::isfinite(poll_interval_s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("reward.poll_interval_s must be > 0, got ", poll_interval_s));
  }
  if (output_dir.empty()) {
    if (experiment_name.empty() || trial_name.empty()) {
      return absl::InvalidArgumentError(
          "give reward.output_dir, or experiment_name and trial_name (batches then go to "
          "<cluster.fileroot>/<experiment_name>/<trial_name>/batches)");
    }
    MOERL_RETURN_IF_ERROR(ValidateExperimentName(experiment_name));
    MOERL_RETURN_IF_ERROR(ValidateTrialName(trial_name));
  }
  return ToRunOptions().scorer.Validate();
}

absl::Status ScorerSettings::Load(const ConfigTree& tree) {
  ConfigSchema schema;
  Declare(&schema);
  MOERL_RETURN_IF_ERROR(schema.Read(tree));
  return Validate();
}

std::string ScorerSettings::OutputDir() const {
  if (!output_dir.empty()) return output_dir;
  return RunDirectory(fileroot, experiment_name, trial_name) + "/batches";
}

ScorerRunOptions ScorerSettings::ToRunOptions() const {
  ScorerRunOptions options;
  options.scorer.n_samples = static_cast<uint32_t>(n_samples);
  options.scorer.batch_size = static_cast<uint32_t>(batch_size);
  options.scorer.message_kind = group_messages ? MessageKind::kGroup : MessageKind::kTrajectory;
  options.scorer.poll_interval = absl::Seconds(poll_interval_s);
  options.scorer.unit_rule = lenient_units ? UnitRule::kLenient : UnitRule::kMathVerify;
  options.scorer.sort_groups = deterministic;
  options.ring = ring;
  options.input_path = input_path;
  options.output_dir = OutputDir();
  return options;
}

}  // namespace moerl
