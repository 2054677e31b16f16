// BridgeSettings: the configuration keys the rollout_bridge binary reads
// (AReaL's names where AReaL has them), bound to one small typed struct.
//
//   BridgeSettings settings;
//   MOERL_RETURN_IF_ERROR(settings.Load(tree));   // Declare + Read + Validate
//   BridgeConfig config = settings.ToBridgeConfig();
//
// Keys (docs/bridge.md has the behaviour behind each):
//   gconfig.n_samples, max_new_tokens, max_tokens, min_new_tokens, greedy,
//   temperature, top_p, top_k, stop_token_ids
//   rollout.max_concurrent_rollouts (null: consumer_batch_size),
//   rollout.consumer_batch_size, max_head_offpolicyness, request_timeout,
//   request_retries, setup_timeout, pause_grace_period, return_routed_experts
//   rollout.server_addrs      list or "h:p,h:p" of inference servers (required)
//   rollout.server_api        sglang (default) or vllm (rollout/vllm_http_client.h)
//   rollout.prompt_ring       default <experiment_name>.<trial_name>.prompts
//   rollout.trajectory_ring   default <experiment_name>.<trial_name>.trajectories
//   rollout.weights_dir       default <cluster.fileroot>/<exp>/<trial>/weights
//   rollout.probe_tolerance   largest |log-prob difference| a server may show
//                             on a version's probe.json before it is refused
//   rollout.api_key           Bearer token for the servers ("" none)
//   experiment_name, trial_name, cluster.*, tokenizer_path, actor.path
// The bridge owns no section: `rollout` and `gconfig` hold AReaL keys other
// stages read too (rollout.backend for the planner, gconfig.n_samples for the
// scorer).
//
// Plain data; thread-compatible.
#ifndef MOERL_ROLLOUT_BRIDGE_SETTINGS_H_
#define MOERL_ROLLOUT_BRIDGE_SETTINGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/config_tree.h"
#include "common/config/schema.h"
#include "common/config/sections.h"
#include "rollout/bridge.h"

namespace moerl {

struct BridgeSettings {
  RunConfig run;
  ClusterConfig cluster;

  int64_t n_samples = 1;
  int64_t max_new_tokens = 16384;
  int64_t max_tokens = 32768;
  int64_t min_new_tokens = 0;
  bool greedy = false;
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 100000000;  // AReaL's 1e8: off
  std::vector<int64_t> stop_token_ids;

  std::optional<int64_t> max_concurrent_rollouts;
  int64_t consumer_batch_size = 1;
  int64_t max_head_offpolicyness = 0;
  double request_timeout = 3600;
  int64_t request_retries = 3;
  double setup_timeout = 300;
  double pause_grace_period = 0;
  bool return_routed_experts = false;

  std::vector<std::string> server_addrs;
  std::string server_api = "sglang";
  std::string prompt_ring;
  std::string trajectory_ring;
  std::string weights_dir;
  double probe_tolerance = 0.05;
  std::string api_key;

  std::string tokenizer_path;
  std::string actor_path;
  bool deterministic = false;  // actor.megatron.use_deterministic_algorithms

  void Declare(ConfigSchema* schema);
  // Names the key and both values on a conflict.
  absl::Status Validate() const;
  absl::Status Load(const ConfigTree& tree);

  // Rings and weights_dir with their defaults filled in.
  absl::StatusOr<std::string> PromptRing() const;
  absl::StatusOr<std::string> TrajectoryRing() const;
  std::string WeightsDir() const;
  // tokenizer_path, else actor.path, else "" (the small default tokenizer).
  const std::string& TokenizerPath() const;
  // `extra_stop_ids`: the tokenizer's EOS ids, appended as AReaL does.
  BridgeConfig ToBridgeConfig(const std::vector<int32_t>& extra_stop_ids) const;
};

}  // namespace moerl

#endif  // MOERL_ROLLOUT_BRIDGE_SETTINGS_H_
