#include "tools/alloc_plan/plan.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/config/cli.h"
#include "common/hf_cache.h"
#include "common/parallel_layout/parallel_layout.h"
#include "common/status.h"

namespace moerl {

void PlannerConfig::Declare(ConfigSchema* schema) {
  allocation.Declare(schema);
  cluster.Declare(schema);
  schema->String("rollout.backend", &rollout_backend,
                 "inference allocation when allocation_mode is empty, e.g. sglang:d4");
  schema->String("actor.backend", &actor_backend,
                 "training allocation when allocation_mode is empty, e.g. megatron:d4p2");
  schema->String("actor.path", &actor_path,
                 "Hugging Face model directory (config.json is enough) or config.json");
  schema->OptionalInt("actor.mb_spec.max_tokens_per_mb", &max_tokens_per_mb,
                      "micro-batch token cap per DP rank", 1);
  schema->Bool("actor.megatron.ddp.grad_reduce_in_fp32", &grad_reduce_in_fp32,
               "fp32 main gradients (4 bytes/param) instead of bf16");
  schema->Bool("actor.megatron.use_precision_aware_optimizer", &precision_aware_optimizer,
               "bf16 Adam moments: optimizer state 8 instead of 12 bytes/param");
  schema->Int("train_dataset.batch_size", &batch_size, "prompts per training step", 1);
  schema->OptionalInt("train_dataset.max_length", &max_length, "longest prompt in tokens", 1);
  schema->Int("gconfig.n_samples", &n_samples, "completions per prompt (GRPO group size)", 1);
  schema->Int("gconfig.max_new_tokens", &max_new_tokens, "longest completion in tokens", 1);
  schema->OwnSection("planner");
  schema->OptionalInt("planner.micro_batch_tokens", &micro_batch_tokens,
                      "tokens per micro-batch and DP rank for the activation estimate "
                      "(default: actor.mb_spec.max_tokens_per_mb, else 8192)",
                      1);
  schema->Double("planner.gpu_memory_gib", &gpu_memory_gib, "memory of one GPU in GiB");
}

absl::Status PlannerConfig::Validate() const {
  MOERL_RETURN_IF_ERROR(cluster.Validate());
  if (actor_path.empty()) {
    return absl::InvalidArgumentError(
        "key 'actor.path' is empty; give the model directory (config.json is enough), e.g. "
        "actor.path=/models/Qwen3-30B-A3B");
  }
  if (!(gpu_memory_gib > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("key 'planner.gpu_memory_gib' must be > 0, got ", gpu_memory_gib));
  }
  return Allocation().status();
}

absl::StatusOr<AllocationMode> PlannerConfig::Allocation() const {
  if (!allocation.allocation_mode.empty()) return allocation.Parse();
  if (actor_backend.empty()) {
    return absl::InvalidArgumentError(
        "no allocation: set allocation_mode (e.g. allocation_mode=sglang:d4+fsdp:d4), or "
        "rollout.backend and actor.backend");
  }
  AllocationMode mode;
  if (!rollout_backend.empty()) {
    absl::StatusOr<moerl::Allocation> rollout = ParseAllocation(rollout_backend);
    if (!rollout.ok()) return Annotate(rollout.status(), "key 'rollout.backend'");
    mode.allocations.push_back(*rollout);
  }
  absl::StatusOr<moerl::Allocation> actor = ParseAllocation(actor_backend);
  if (!actor.ok()) return Annotate(actor.status(), "key 'actor.backend'");
  mode.allocations.push_back(*actor);
  return mode;
}

absl::StatusOr<ModelConfig> LoadActorModelConfig(const std::string& actor_path) {
  std::error_code error;
  const std::string file = std::filesystem::is_directory(actor_path, error)
                               ? actor_path + "/config.json"
                               : actor_path;
  absl::StatusOr<ModelConfig> model = ModelConfig::FromFile(file);
  if (!model.ok() && !absl::IsInvalidArgument(model.status())) {
    // Not a parse error: the file itself is missing or unreadable.
    return absl::Status(model.status().code(),
                        absl::StrCat(model.status().message(),
                                     "; actor.path must be a Hugging Face model directory "
                                     "(config.json is enough) or the config.json file itself"));
  }
  return model;
}

int64_t PlannerConfig::MicroBatchTokens() const {
  if (micro_batch_tokens) return *micro_batch_tokens;
  if (max_tokens_per_mb) return *max_tokens_per_mb;
  return 8192;
}

int64_t PlannerConfig::TokensPerStep() const {
  return batch_size * n_samples * (max_length.value_or(1024) + max_new_tokens);
}

absl::StatusOr<Plan> MakePlan(const PlannerConfig& config) {
  MOERL_ASSIGN_OR_RETURN(AllocationMode mode, config.Allocation());
  Plan plan;
  plan.model_path = config.actor_path;
  MOERL_ASSIGN_OR_RETURN(plan.model, LoadActorModelConfig(config.actor_path));
  plan.params = CountParameters(plan.model);
  plan.allocation_mode = ToString(mode);
  plan.total_gpus = mode.TotalGpus();
  plan.gpus_per_node = config.cluster.n_gpus_per_node;
  plan.cluster_gpus = config.cluster.TotalGpus();
  plan.nodes_needed = (plan.total_gpus + plan.gpus_per_node - 1) / plan.gpus_per_node;
  plan.fits_cluster = plan.total_gpus <= plan.cluster_gpus;
  plan.gpu_memory_bytes = config.gpu_memory_gib * kGiB;
  if (!plan.fits_cluster) {
    plan.problems.push_back(absl::StrCat(
        "the allocation needs ", plan.total_gpus, " GPUs (", plan.nodes_needed,
        " nodes), the cluster has ", config.cluster.n_nodes, " x ", config.cluster.n_gpus_per_node,
        " = ", plan.cluster_gpus));
  }
  plan.options.micro_batch_tokens = config.MicroBatchTokens();
  plan.options.tokens_per_step = config.TokensPerStep();
  plan.options.grad_reduce_in_fp32 = config.grad_reduce_in_fp32;
  plan.options.precision_aware_optimizer = config.precision_aware_optimizer;

  for (const Allocation& a : mode.allocations) {
    if (a.IsInference()) {
      InferencePlan ip;
      ip.allocation = a;
      ip.servers = a.dims.dp;
      ip.gpus_per_server = a.InstanceSize();
      ip.weight_bytes_per_gpu = 2.0 * plan.params.total / ip.gpus_per_server;
      if (ip.weight_bytes_per_gpu > plan.gpu_memory_bytes) {
        plan.problems.push_back(absl::StrCat(
            ToString(a), ": bf16 weights need ", ip.weight_bytes_per_gpu / kGiB,
            " GiB per GPU, more than planner.gpu_memory_gib = ", config.gpu_memory_gib));
      }
      plan.inference.push_back(std::move(ip));
      continue;
    }
    TrainingPlan tp;
    tp.allocation = a;
    tp.estimate = EstimateTraining(plan.model, a.dims, a.backend, plan.options);
    for (const std::string& p : tp.estimate.problems) {
      plan.problems.push_back(absl::StrCat(ToString(a), ": ", p));
    }
    if (config.batch_size % a.dims.dp != 0) {
      plan.problems.push_back(absl::StrCat(ToString(a), ": train_dataset.batch_size (",
                                           config.batch_size, ") is not divisible by dp (",
                                           a.dims.dp, ")"));
    }
    const double worst = tp.estimate.worst_stage.total_bytes();
    if (worst > plan.gpu_memory_bytes) {
      plan.problems.push_back(absl::StrCat(
          ToString(a), ": stage ", tp.estimate.worst_stage.stage, " needs about ", worst / kGiB,
          " GiB per GPU, more than planner.gpu_memory_gib = ", config.gpu_memory_gib));
    }
    MOERL_ASSIGN_OR_RETURN(ParallelLayout layout, ParallelLayout::Create(a.dims));
    for (RankGroupKind kind : AllRankGroupKinds()) {
      RankGroups groups = layout.Groups(kind);
      const size_t n = groups.size();
      if (n > 8) groups.resize(8);
      std::string text = FormatRankGroups(groups);
      if (n > 8) absl::StrAppend(&text, " ... (", n, " groups)");
      tp.rank_groups.emplace_back(std::string(RankGroupName(kind)), text);
    }
    plan.training.push_back(std::move(tp));
  }
  return plan;
}

absl::Status RunAllocPlan(const std::vector<std::string>& args, std::ostream& out) {
  PlannerConfig config;
  ConfigSchema schema;
  config.Declare(&schema);
  if (std::find(args.begin(), args.end(), "--help") != args.end()) {
    out << "alloc_plan --config <yaml> [--json] [key=value ...]\nkeys read:\n" << schema.Describe();
    return absl::OkStatus();
  }
  MOERL_ASSIGN_OR_RETURN(CommandLine cli, ParseCommandLine(args, {"--json"}));
  MOERL_ASSIGN_OR_RETURN(ConfigTree tree, LoadConfig(cli));
  MOERL_RETURN_IF_ERROR(schema.Read(tree));
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("actor.path", &config.actor_path));
  MOERL_RETURN_IF_ERROR(config.Validate());
  MOERL_ASSIGN_OR_RETURN(Plan plan, MakePlan(config));
  if (cli.flags.count("--json")) {
    out << PlanToJson(plan).dump(2) << "\n";
  } else {
    out << FormatPlanTable(plan);
  }
  if (!plan.problems.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(plan.problems.size(), " problem(s) with this layout; see the plan above"));
  }
  return absl::OkStatus();
}

}  // namespace moerl
