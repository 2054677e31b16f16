#include "tools/pipeline/pipeline_plan.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/config/cli.h"
#include "common/config/names.h"
#include "common/config/schema.h"
#include "common/config/sections.h"
#include "common/config/writer.h"
#include "common/hf_cache.h"
#include "common/status.h"

namespace moerl {
namespace {

// rollout.server_addrs: a YAML list or one comma-separated string of host:port.
absl::StatusOr<std::vector<std::string>> ServerAddresses(const ConfigTree& tree) {
  const YAML::Node node = tree.Find("rollout.server_addrs");
  std::vector<std::string> out;
  if (!node.IsDefined() || node.IsNull()) return out;
  std::vector<std::string> items;
  if (node.IsSequence()) {
    for (const YAML::Node& item : node) {
      if (!item.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "key 'rollout.server_addrs' (", tree.Origin("rollout.server_addrs"),
            "): every entry must be a host:port string"));
      }
      items.push_back(item.Scalar());
    }
  } else if (node.IsScalar()) {
    items = absl::StrSplit(node.Scalar(), ',', absl::SkipWhitespace());
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "key 'rollout.server_addrs' (", tree.Origin("rollout.server_addrs"),
        "): expected a list or a comma-separated string of host:port"));
  }
  for (std::string& item : items) {
    absl::string_view address = absl::StripAsciiWhitespace(item);
    absl::ConsumePrefix(&address, "http://");
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key 'rollout.server_addrs' (", tree.Origin("rollout.server_addrs"), "): '", item,
          "' is not host:port"));
    }
    out.emplace_back(address);
  }
  return out;
}

// scheduler.type=ray or slurm: trainer ranks fill slots from node 0; each
// server takes gpus_per_server slots on one node, after the ranks.
absl::Status PlaceOnNodes(const ClusterConfig& cluster, PipelinePlan* plan) {
  const int64_t slots = cluster.n_gpus_per_node;
  plan->ray_nodes = static_cast<int>(cluster.n_nodes);
  plan->ray_slots_per_node = static_cast<int>(slots);
  const int64_t needed = plan->trainer_ranks + int64_t{plan->servers} * plan->gpus_per_server;
  const std::string capacity = absl::StrCat(
      "scheduler.type=", plan->scheduler, ": allocation_mode '", plan->allocation_mode, "' needs ", needed,
      " GPUs (", plan->trainer_ranks, " trainer ranks + ", plan->servers, " servers x ",
      plan->gpus_per_server, "); cluster.n_nodes x cluster.n_gpus_per_node = ", cluster.n_nodes,
      " x ", slots);
  if (plan->gpus_per_server > slots) {
    return absl::InvalidArgumentError(absl::StrCat(
        capacity, ", and one server's ", plan->gpus_per_server,
        " GPUs must be on one node; raise cluster.n_gpus_per_node"));
  }
  int64_t next = 0;  // the next free slot, counted over all nodes
  for (int r = 0; r < plan->trainer_ranks; ++r, ++next) {
    plan->trainer_rank_nodes.push_back(static_cast<int>(next / slots));
  }
  for (int i = 0; i < plan->servers; ++i) {
    if (next % slots + plan->gpus_per_server > slots) next = (next / slots + 1) * slots;
    plan->server_nodes.push_back(static_cast<int>(next / slots));
    next += plan->gpus_per_server;
  }
  if (next > cluster.n_nodes * slots) {
    return absl::InvalidArgumentError(
        absl::StrCat(capacity, "; raise cluster.n_nodes or use a smaller allocation"));
  }
  return absl::OkStatus();
}

std::string Quote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

absl::StatusOr<PipelinePlan> LoadPipelinePlan(const std::vector<std::string>& args) {
  MOERL_ASSIGN_OR_RETURN(CommandLine cli, ParseCommandLine(args, {}));
  MOERL_ASSIGN_OR_RETURN(ConfigTree tree, LoadConfig(cli));

  RunConfig run;
  ClusterConfig cluster;
  SchedulerConfig scheduler;
  AllocationModeConfig allocation;
  PipelinePlan plan;
  ConfigSchema schema;
  run.Declare(&schema);
  cluster.Declare(&schema);
  scheduler.Declare(&schema);
  allocation.Declare(&schema);
  schema.OwnSection("pipeline");
  schema.Int("pipeline.sft_steps", &plan.sft_steps, "SFT warm-up steps before RL (0: none)", 0);
  schema.Int("pipeline.sft_batch_size", &plan.sft_batch_size, "problems per SFT step", 1);
  schema.Double("pipeline.sft_lr", &plan.sft_lr, "SFT learning rate (0: actor.optimizer.lr)");
  schema.Int("pipeline.synthetic_level", &plan.synthetic_level,
             "difficulty (dataset/synthetic.h) of the embedded default's problems", 0, 5);
  double actor_lr = 1e-3;  // the trainer's default, read here for the SFT default
  schema.Double("actor.optimizer.lr", &actor_lr, "learning rate");
  schema.Double("pipeline.stage_timeout_s", &plan.stage_timeout_s,
                "a stage that makes no progress this long is reported by name and the run stops");
  schema.Int("pipeline.ring_capacity_bytes", &plan.ring_capacity_bytes,
             "bytes of each shared-memory ring", 1 << 16, int64_t{1} << 34);
  schema.Choice("pipeline.output", &plan.output, {"text", "quiet", "json"},
                "progress on the terminal: a line per step, nothing, or JSON lines");
  schema.OptionalInt("total_train_steps", &plan.total_train_steps, "training steps of the run", 1);
  schema.Choice("recover.mode", &plan.recover_mode, {"auto", "on", "disabled", "off"},
                "auto/on: resume the run in the folder; disabled/off: the folder must be new");
  schema.Bool("pipeline.report", &plan.report, "write report/ (plots and summary) at the end");
  schema.Bool("pipeline.dry_run", &plan.dry_run,
              "print the plan and check every stage accepts the configuration; start nothing");
  schema.String("actor.path", &plan.model_path, "the model: a folder or a Hugging Face model id");
  MOERL_RETURN_IF_ERROR(schema.Read(tree));
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("actor.path", &plan.model_path));
  MOERL_RETURN_IF_ERROR(run.Validate());
  MOERL_RETURN_IF_ERROR(cluster.Validate());
  if (plan.stage_timeout_s <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("key 'pipeline.stage_timeout_s' is ",
                                                   plan.stage_timeout_s, "; it must be > 0"));
  }
  MOERL_ASSIGN_OR_RETURN(AllocationMode mode, allocation.Parse());

  if (plan.sft_lr <= 0) plan.sft_lr = actor_lr;
  plan.experiment_name = run.experiment_name;
  plan.trial_name = run.trial_name;
  plan.run_dir = RunDirectory(cluster.fileroot, run.experiment_name, run.trial_name);
  plan.scheduler = scheduler.type.empty() ? "local" : scheduler.type;
  plan.allocation_mode = ToString(mode);
  MOERL_ASSIGN_OR_RETURN(plan.external_servers, ServerAddresses(tree));

  const std::vector<int> inference = mode.InferenceIndices();
  const std::vector<int> training = mode.TrainingIndices();
  if (training.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key 'allocation_mode' (", allocation.allocation_mode, ") has ", training.size(),
        " training allocations; the pipeline runs exactly one (the actor), e.g. "
        "sglang:d1+megatron:(attn:d2|ffn:e2)"));
  }
  if (inference.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key 'allocation_mode' (", allocation.allocation_mode, ") has ", inference.size(),
        " inference allocations; the pipeline runs at most one"));
  }
  const Allocation& actor = mode.allocations[training[0]];
  plan.training_backend = std::string(BackendName(actor.backend));
  plan.trainer_ranks = actor.dims.WorldSize();
  if (!inference.empty()) {
    const Allocation& servers = mode.allocations[inference[0]];
    plan.inference_backend = std::string(BackendName(servers.backend));
    plan.gpus_per_server = servers.InstanceSize();
    plan.servers = plan.external_servers.empty() ? servers.dims.dp : 0;
  } else if (plan.external_servers.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key 'allocation_mode' (", allocation.allocation_mode,
        ") has no inference allocation and rollout.server_addrs is empty: nothing would "
        "generate; add one, e.g. sglang:d1+", ToString(actor)));
  }
  plan.prompt_ring = absl::StrCat(run.experiment_name, ".", run.trial_name, ".prompts");
  plan.trajectory_ring = absl::StrCat(run.experiment_name, ".", run.trial_name, ".trajectories");
  if (plan.scheduler == "ray" || plan.scheduler == "slurm") MOERL_RETURN_IF_ERROR(PlaceOnNodes(cluster, &plan));
  return plan;
}

std::string ShellAssignments(const PipelinePlan& plan) {
  std::ostringstream out;
  auto line = [&out](const char* name, const std::string& value) {
    out << name << "=" << Quote(value) << "\n";
  };
  line("experiment_name", plan.experiment_name);
  line("trial_name", plan.trial_name);
  line("run_dir", plan.run_dir);
  line("scheduler", plan.scheduler);
  line("allocation_mode", plan.allocation_mode);
  line("inference_backend", plan.inference_backend);
  line("training_backend", plan.training_backend);
  line("n_servers", std::to_string(plan.servers));
  line("gpus_per_server", std::to_string(plan.gpus_per_server));
  line("external_servers", absl::StrJoin(plan.external_servers, " "));
  line("trainer_ranks", std::to_string(plan.trainer_ranks));
  line("total_steps", plan.total_train_steps ? std::to_string(*plan.total_train_steps) : "?");
  line("sft_steps", std::to_string(plan.sft_steps));
  line("sft_batch_size", std::to_string(plan.sft_batch_size));
  line("sft_lr", absl::StrCat(plan.sft_lr));
  line("synthetic_level", std::to_string(plan.synthetic_level));
  line("stage_timeout_s", absl::StrCat(plan.stage_timeout_s));
  line("ring_capacity_bytes", std::to_string(plan.ring_capacity_bytes));
  line("output_mode", plan.output);
  line("write_report", plan.report ? "1" : "0");
  line("dry_run", plan.dry_run ? "1" : "0");
  line("model_path", plan.model_path);
  line("resume", plan.recover_mode == "auto" || plan.recover_mode == "on" ? "1" : "0");
  line("prompt_ring", plan.prompt_ring);
  line("trajectory_ring", plan.trajectory_ring);
  line("ray_nodes", std::to_string(plan.ray_nodes));
  line("ray_slots_per_node", std::to_string(plan.ray_slots_per_node));
  line("trainer_rank_nodes", absl::StrJoin(plan.trainer_rank_nodes, " "));
  line("server_nodes", absl::StrJoin(plan.server_nodes, " "));
  return out.str();
}

absl::Status WriteRunConfig(const std::vector<std::string>& args) {
  MOERL_ASSIGN_OR_RETURN(PipelinePlan plan, LoadPipelinePlan(args));
  MOERL_ASSIGN_OR_RETURN(CommandLine cli, ParseCommandLine(args, {}));
  MOERL_ASSIGN_OR_RETURN(ConfigTree tree, LoadConfig(cli));
  return WriteResolvedConfig(tree, plan.run_dir);
}

}  // namespace moerl
