// The pipeline script's view of a configuration: which run folder, how many
// inference servers and trainer ranks to start, and how to supervise them,
// decided from the same YAML + key=value overrides every stage reads.
// tools/pipeline/pipeline.sh evaluates the binary's output (shell assignments) and
// only composes processes; every rule lives here, where it is tested.
//
//   MOERL_ASSIGN_OR_RETURN(PipelinePlan plan, LoadPipelinePlan({"--config", "x.yaml", "seed=3"}));
//   plan.run_dir;           // <cluster.fileroot>/<experiment_name>/<trial_name>
//   plan.servers;           // inference replicas to start (0: external servers)
//   plan.trainer_ranks;     // world size of the training allocation
//   std::cout << ShellAssignments(plan);
//
// Keys (docs/pipeline.md): experiment_name, trial_name, seed, cluster.*,
// scheduler.type, allocation_mode, recover.mode, rollout.server_addrs
// (external servers: none are started), and the owned `pipeline` section:
//   pipeline.sft_steps          SFT warm-up steps before RL (0: none)
//   pipeline.sft_batch_size     problems per SFT step
//   pipeline.sft_lr             SFT learning rate (default actor.optimizer.lr)
//   pipeline.synthetic_level    difficulty of the embedded default's problems
//   pipeline.stage_timeout_s    a stage without progress this long is reported
//   pipeline.ring_capacity_bytes  size of each shared-memory ring
//   pipeline.output             text | quiet | json (progress on the terminal)
//   pipeline.report             write report/ at the end
//   pipeline.dry_run            print the plan, check every stage accepts the
//                               configuration (--check_config), start nothing
// actor.path may be a Hugging Face model id, resolved in the local cache
// (common/hf_cache.h): model_path is the folder every stage will load, and an
// id that is not there fails the plan before anything starts.
//
// scheduler.type=ray places the stages on cluster.n_nodes nodes of
// cluster.n_gpus_per_node slots (GPUs; CPU slots on a cluster without GPUs):
// trainer ranks first, one slot each from node 0, then each server on the
// next node that still has its gpus_per_server slots free. Feeder, bridge and
// scorer share their shared-memory rings and so run on node 0, the node the
// pipeline script runs on.
// Plain data; thread-compatible.
#ifndef MOERL_TOOLS_PIPELINE_PIPELINE_PLAN_H_
#define MOERL_TOOLS_PIPELINE_PIPELINE_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moerl {

struct PipelinePlan {
  std::string experiment_name;
  std::string trial_name;
  std::string run_dir;
  std::string scheduler = "local";      // local | slurm | ray
  std::string allocation_mode;          // canonical
  std::string inference_backend;        // sglang | vllm | "" (none)
  std::string training_backend;         // megatron | fsdp
  int servers = 0;                      // inference replicas to start here
  int gpus_per_server = 0;
  std::vector<std::string> external_servers;  // rollout.server_addrs
  int trainer_ranks = 1;
  std::optional<int64_t> total_train_steps;  // for the progress line
  int64_t sft_steps = 0;
  int64_t sft_batch_size = 16;
  double sft_lr = 0;  // 0: actor.optimizer.lr
  int64_t synthetic_level = 1;
  double stage_timeout_s = 600;
  int64_t ring_capacity_bytes = 64 << 20;
  std::string output = "text";
  std::string recover_mode = "disabled";  // recover.mode: auto/on resume a run
  bool report = true;
  bool dry_run = false;
  std::string model_path;               // actor.path, an id resolved to its folder
  std::string prompt_ring;              // <experiment>.<trial>.prompts
  std::string trajectory_ring;          // <experiment>.<trial>.trajectories
  // scheduler.type=ray or slurm only (empty otherwise): the node
  // (placement-group bundle, or node of the Slurm allocation) of each trainer
  // rank and each server, out of ray_nodes.
  int ray_nodes = 0;                    // cluster.n_nodes
  int ray_slots_per_node = 0;           // cluster.n_gpus_per_node
  std::vector<int> trainer_rank_nodes;
  std::vector<int> server_nodes;
};

// `--config <yaml> key=value ...` (args without argv[0]) -> the plan, or
// InvalidArgument naming the key that is wrong.
absl::StatusOr<PipelinePlan> LoadPipelinePlan(const std::vector<std::string>& args);

// Writes the resolved configuration of `args` to <plan.run_dir>/config.yaml
// (common/config/writer.h), for the run's report and reproduction.
absl::Status WriteRunConfig(const std::vector<std::string>& args);

// `name='value'` lines, single-quoted for the shell (lists space-separated).
std::string ShellAssignments(const PipelinePlan& plan);

}  // namespace moerl

#endif  // MOERL_TOOLS_PIPELINE_PIPELINE_PLAN_H_
