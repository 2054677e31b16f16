#include "common/config/sections.h"

#include "absl/strings/str_cat.h"
#include "common/config/names.h"
#include "common/status.h"

namespace moerl {

void RunConfig::Declare(ConfigSchema* schema) {
  schema->String("experiment_name", &experiment_name,
                 "directory under cluster.fileroot; [A-Za-z0-9.-], no '_'");
  schema->String("trial_name", &trial_name, "directory under the experiment; [A-Za-z0-9._], no '-'");
  schema->Int("seed", &seed, "seed of every random generator", 0);
}

absl::Status RunConfig::Validate() const {
  MOERL_RETURN_IF_ERROR(ValidateExperimentName(experiment_name));
  return ValidateTrialName(trial_name);
}

void ClusterConfig::Declare(ConfigSchema* schema) {
  schema->OwnSection("cluster");
  schema->Int("cluster.n_nodes", &n_nodes, "nodes in the cluster", 1, 1 << 16);
  schema->Int("cluster.n_gpus_per_node", &n_gpus_per_node, "GPUs per node", 1, 1024);
  schema->String("cluster.fileroot", &fileroot,
                 "root of run directories: <fileroot>/<experiment_name>/<trial_name>/");
}

absl::Status ClusterConfig::Validate() const {
  if (fileroot.empty()) {
    return absl::InvalidArgumentError(
        "key 'cluster.fileroot' is empty; give a directory, e.g. cluster.fileroot=/tmp/moerl");
  }
  if (fileroot.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("key 'cluster.fileroot' contains a NUL byte");
  }
  return absl::OkStatus();
}

void SchedulerConfig::Declare(ConfigSchema* schema) {
  schema->OwnSection("scheduler");
  schema->Choice("scheduler.type", &type, {"", "local", "slurm", "ray"},
                 "null or local: tools/pipeline/pipeline.sh on this machine; slurm or ray: the stages "
                 "are placed by that scheduler");
}

void AllocationModeConfig::Declare(ConfigSchema* schema) {
  schema->String("allocation_mode", &allocation_mode,
                 "GPUs per engine, e.g. sglang:d4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)");
}

absl::StatusOr<AllocationMode> AllocationModeConfig::Parse() const {
  absl::StatusOr<AllocationMode> mode = ParseAllocationMode(allocation_mode);
  if (!mode.ok()) return Annotate(mode.status(), "key 'allocation_mode'");
  return mode;
}

}  // namespace moerl
