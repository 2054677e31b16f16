// The allocation planner: from a config (allocation, cluster, model path,
// batch sizes) to a Plan, printed as a table or JSON. The binary
// (alloc_plan_main.cc) only forwards argv to RunAllocPlan.
//
//   std::ostringstream out;
//   absl::Status s = RunAllocPlan({"--config", "grpo.yaml", "cluster.n_nodes=2"}, out);
//
// RunAllocPlan returns FailedPrecondition after printing when the plan has
// problems (does not fit, indivisible sizes), so scripts can gate on it.
// Thread-compatible; reads files, writes only to `out`.
#ifndef MOERL_TOOLS_ALLOC_PLAN_PLAN_H_
#define MOERL_TOOLS_ALLOC_PLAN_PLAN_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/config/schema.h"
#include "common/config/sections.h"
#include "nlohmann/json.hpp"
#include "tools/alloc_plan/estimate.h"
#include "trainer/model/config.h"

namespace moerl {

// The keys alloc_plan reads. It owns only `planner.*`; the other keys belong
// to the trainer and rollout sections and are only type-checked here.
struct PlannerConfig {
  AllocationModeConfig allocation;
  ClusterConfig cluster;
  std::string rollout_backend;  // AReaL >= 1.0.3 per-engine form, used when
  std::string actor_backend;    // allocation_mode is empty
  std::string actor_path;
  std::optional<int64_t> max_tokens_per_mb;
  bool grad_reduce_in_fp32 = true;
  bool precision_aware_optimizer = false;
  int64_t batch_size = 1;
  std::optional<int64_t> max_length;
  int64_t n_samples = 1;
  int64_t max_new_tokens = 1024;
  std::optional<int64_t> micro_batch_tokens;  // planner.micro_batch_tokens
  double gpu_memory_gib = 80;

  void Declare(ConfigSchema* schema);
  absl::Status Validate() const;
  // allocation_mode, or rollout.backend + actor.backend.
  absl::StatusOr<AllocationMode> Allocation() const;
  int64_t MicroBatchTokens() const;
  int64_t TokensPerStep() const;  // batch * n_samples * (prompt + new tokens)
};

// The model's config.json (trainer/model/config.h, the trainer's own parser)
// from actor.path: a Hugging Face model directory (config.json is enough) or
// the config.json file itself.
absl::StatusOr<ModelConfig> LoadActorModelConfig(const std::string& actor_path);

struct InferencePlan {
  Allocation allocation;
  int servers = 0;
  int gpus_per_server = 0;
  double weight_bytes_per_gpu = 0;  // bf16
};

struct TrainingPlan {
  Allocation allocation;
  TrainingEstimate estimate;
  std::vector<std::pair<std::string, std::string>> rank_groups;  // kind, formatted groups
};

struct Plan {
  std::string allocation_mode;  // canonical
  int total_gpus = 0;
  int64_t cluster_gpus = 0;
  int64_t gpus_per_node = 0;
  int64_t nodes_needed = 0;
  bool fits_cluster = false;
  double gpu_memory_bytes = 0;
  std::string model_path;
  ModelConfig model;
  ParameterCounts params;
  PlanOptions options;
  std::vector<InferencePlan> inference;
  std::vector<TrainingPlan> training;
  std::vector<std::string> problems;
};

absl::StatusOr<Plan> MakePlan(const PlannerConfig& config);
std::string FormatPlanTable(const Plan& plan);
nlohmann::json PlanToJson(const Plan& plan);

// args excludes argv[0]: --config <yaml> [--json] [overrides...].
absl::Status RunAllocPlan(const std::vector<std::string>& args, std::ostream& out);

}  // namespace moerl

#endif  // MOERL_TOOLS_ALLOC_PLAN_PLAN_H_
