// Typed config sections that several binaries share. Each is a small struct
// whose fields hold the defaults, a Declare() that binds them into the
// binary's ConfigSchema, and a Validate() for rules across fields. A binary
// links only the sections it reads; there is no struct of everything.
//
//   RunConfig run;  ClusterConfig cluster;
//   ConfigSchema schema;
//   run.Declare(&schema);
//   cluster.Declare(&schema);
//   MOERL_RETURN_IF_ERROR(schema.Read(tree));
//   MOERL_RETURN_IF_ERROR(run.Validate());
//   RunDirectory(cluster.fileroot, run.experiment_name, run.trial_name);
//
// Plain data; thread-compatible.
#ifndef MOERL_COMMON_CONFIG_SECTIONS_H_
#define MOERL_COMMON_CONFIG_SECTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/config/schema.h"

namespace moerl {

// Top-level experiment_name, trial_name, seed.
struct RunConfig {
  std::string experiment_name;
  std::string trial_name;
  int64_t seed = 1;

  void Declare(ConfigSchema* schema);
  // Both names present and valid (common/config/names.h).
  absl::Status Validate() const;
};

// cluster.* (owned: unknown cluster keys are errors).
struct ClusterConfig {
  int64_t n_nodes = 1;
  int64_t n_gpus_per_node = 8;
  std::string fileroot = "/tmp/moerl/experiments";

  void Declare(ConfigSchema* schema);
  absl::Status Validate() const;
  int64_t TotalGpus() const { return n_nodes * n_gpus_per_node; }
};

// scheduler.* (owned). "" (null) is the local launcher of tools/pipeline/pipeline.sh.
struct SchedulerConfig {
  std::string type;

  void Declare(ConfigSchema* schema);
  absl::Status Validate() const { return absl::OkStatus(); }
};

// Top-level allocation_mode.
struct AllocationModeConfig {
  std::string allocation_mode;

  void Declare(ConfigSchema* schema);
  // Parses allocation_mode; the error carries the caret message.
  absl::StatusOr<AllocationMode> Parse() const;
  absl::Status Validate() const { return Parse().status(); }
};

}  // namespace moerl

#endif  // MOERL_COMMON_CONFIG_SECTIONS_H_
