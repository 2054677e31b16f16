#include "rollout/bridge_settings.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/names.h"
#include "common/hf_cache.h"
#include "common/status.h"
#include "common/transport/shm_ring.h"
#include "rollout/sglang_http_client.h"

namespace moerl {
namespace {

absl::Status Positive(const char* key, double value) {
  if (value > 0 && std::isfinite(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(key, " must be > 0 seconds, got ", value));
}

}  // namespace

void BridgeSettings::Declare(ConfigSchema* schema) {
  run.Declare(schema);
  cluster.Declare(schema);
  constexpr int64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
  schema->Int("gconfig.n_samples", &n_samples, "completions per prompt (GRPO group size)", 1,
              kMaxU32);
  schema->Int("gconfig.max_new_tokens", &max_new_tokens, "longest completion in tokens", 1);
  schema->Int("gconfig.max_tokens", &max_tokens, "prompt + completion cap in tokens", 2);
  schema->Int("gconfig.min_new_tokens", &min_new_tokens, "EOS ignored before this many", 0);
  schema->Bool("gconfig.greedy", &greedy, "temperature 0 in the request");
  schema->Double("gconfig.temperature", &temperature, "sampling temperature");
  schema->Double("gconfig.top_p", &top_p, "nucleus sampling mass, (0, 1]");
  schema->Int("gconfig.top_k", &top_k, "top-k (>= 1e8 or -1: off)", -1);
  schema->IntList("gconfig.stop_token_ids", &stop_token_ids,
                  "extra stop ids (the tokenizer's EOS ids are added)", 0);
  schema->OptionalInt("rollout.max_concurrent_rollouts", &max_concurrent_rollouts,
                      "prompt groups in flight (null: consumer_batch_size)", 1);
  schema->Int("rollout.consumer_batch_size", &consumer_batch_size,
              "groups the trainer takes per version", 1);
  schema->Int("rollout.max_head_offpolicyness", &max_head_offpolicyness,
              "versions the rollout may run ahead of the trainer", 0);
  schema->Double("rollout.request_timeout", &request_timeout, "seconds per HTTP request");
  schema->Int("rollout.request_retries", &request_retries, "retries on one server", 0);
  schema->Double("rollout.setup_timeout", &setup_timeout,
                 "seconds to wait for servers and weights/LATEST");
  schema->Double("rollout.pause_grace_period", &pause_grace_period,
                 "seconds slept after pause_generation");
  schema->Bool("rollout.return_routed_experts", &return_routed_experts,
               "ask for the routed experts (router replay)");
  schema->StringList("rollout.server_addrs", &server_addrs, "inference servers, host:port");
  schema->Choice("rollout.server_api", &server_api, {"sglang", "vllm"},
                 "the servers' HTTP API (vllm: OpenAI completions + AReaL's /areal_*)");
  schema->String("rollout.prompt_ring", &prompt_ring, "ShmRing of Prompt messages");
  schema->String("rollout.trajectory_ring", &trajectory_ring,
                 "ShmRing for one-group TrajectoryBatch messages");
  schema->String("rollout.weights_dir", &weights_dir, "the run's weights/ folder");
  schema->Double("rollout.probe_tolerance", &probe_tolerance,
                 "largest |log-prob difference| on probe.json");
  schema->String("rollout.api_key", &api_key, "Bearer token for the servers");
  schema->String("tokenizer_path", &tokenizer_path, "tokenizer directory or tokenizer.json");
  schema->String("actor.path", &actor_path, "model directory (its tokenizer is used)");
  schema->Bool("actor.megatron.use_deterministic_algorithms", &deterministic,
               "a reproducible run: each request carries a sampling_seed from seed, group and sample");
}

absl::Status BridgeSettings::Validate() const {
  MOERL_RETURN_IF_ERROR(run.Validate());
  MOERL_RETURN_IF_ERROR(cluster.Validate());
  if (server_addrs.empty()) {
    return absl::InvalidArgumentError(
        "rollout.server_addrs is empty; give the inference servers, e.g. "
        "rollout.server_addrs=127.0.0.1:30000,127.0.0.1:30001");
  }
  for (const std::string& address : server_addrs) {
    absl::StatusOr<HostPort> parsed = ParseHostPort(address);
    if (!parsed.ok()) return Annotate(parsed.status(), "rollout.server_addrs");
  }
  if (server_api == "vllm" && return_routed_experts) {
    return absl::InvalidArgumentError(
        "rollout.return_routed_experts=true needs rollout.server_api=sglang (vLLM returns no "
        "routes), got rollout.server_api=vllm");
  }
  if (max_new_tokens >= max_tokens) {
    // AReaL caps per prompt; a cap that leaves no room for any prompt is a typo.
    return absl::InvalidArgumentError(absl::StrCat("gconfig.max_new_tokens=", max_new_tokens,
                                                   " must be < gconfig.max_tokens=", max_tokens,
                                                   " (prompt + completion)"));
  }
  if (min_new_tokens > max_new_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("gconfig.min_new_tokens=", min_new_tokens,
                     " exceeds gconfig.max_new_tokens=", max_new_tokens));
  }
  if (!greedy && !(temperature > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gconfig.temperature must be > 0 (or set gconfig.greedy=true), got ", temperature));
  }
  if (!(top_p > 0 && top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("gconfig.top_p must be in (0, 1], got ", top_p));
  }
  if (top_k == 0) {
    return absl::InvalidArgumentError("gconfig.top_k must be >= 1 or -1 (off), got 0");
  }
  MOERL_RETURN_IF_ERROR(Positive("rollout.request_timeout", request_timeout));
  MOERL_RETURN_IF_ERROR(Positive("rollout.setup_timeout", setup_timeout));
  if (!(pause_grace_period >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rollout.pause_grace_period must be >= 0, got ", pause_grace_period));
  }
  if (!(probe_tolerance >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rollout.probe_tolerance must be >= 0, got ", probe_tolerance));
  }
  MOERL_RETURN_IF_ERROR(PromptRing().status());
  return TrajectoryRing().status();
}

absl::Status BridgeSettings::Load(const ConfigTree& tree) {
  ConfigSchema schema;
  Declare(&schema);
  MOERL_RETURN_IF_ERROR(schema.Read(tree));
  // Hugging Face model ids name their snapshot in the local cache.
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("tokenizer_path", &tokenizer_path));
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("actor.path", &actor_path));
  return Validate();
}

absl::StatusOr<std::string> BridgeSettings::PromptRing() const {
  if (!prompt_ring.empty()) return prompt_ring;
  return ShmRing::SegmentName(run.experiment_name, run.trial_name, "prompts");
}

absl::StatusOr<std::string> BridgeSettings::TrajectoryRing() const {
  if (!trajectory_ring.empty()) return trajectory_ring;
  return ShmRing::SegmentName(run.experiment_name, run.trial_name, "trajectories");
}

std::string BridgeSettings::WeightsDir() const {
  if (!weights_dir.empty()) return weights_dir;
  return absl::StrCat(RunDirectory(cluster.fileroot, run.experiment_name, run.trial_name),
                      "/weights");
}

const std::string& BridgeSettings::TokenizerPath() const {
  return tokenizer_path.empty() ? actor_path : tokenizer_path;
}

BridgeConfig BridgeSettings::ToBridgeConfig(const std::vector<int32_t>& extra_stop_ids) const {
  BridgeConfig config;
  config.n_samples = static_cast<uint32_t>(n_samples);
  config.sampling.max_new_tokens = max_new_tokens;
  config.sampling.min_new_tokens = min_new_tokens;
  config.sampling.temperature = greedy ? 0.0 : temperature;
  config.sampling.top_p = top_p;
  config.sampling.top_k = top_k >= 100000000 ? -1 : top_k;
  config.sampling.stop_token_ids = stop_token_ids;
  for (int32_t id : extra_stop_ids) {
    if (std::find(stop_token_ids.begin(), stop_token_ids.end(), id) == stop_token_ids.end()) {
      config.sampling.stop_token_ids.push_back(id);
    }
  }
  config.sampling.skip_special_tokens = false;
  config.max_tokens = max_tokens;
  config.return_routed_experts = return_routed_experts;
  config.consumer_batch_size = consumer_batch_size;
  config.max_concurrent_rollouts = max_concurrent_rollouts.value_or(consumer_batch_size);
  config.max_head_offpolicyness = max_head_offpolicyness;
  config.request_timeout = absl::Seconds(request_timeout);
  config.request_retries = request_retries;
  config.setup_timeout = absl::Seconds(setup_timeout);
  config.pause_grace_period = absl::Seconds(pause_grace_period);
  config.weights_dir = WeightsDir();
  config.probe_tolerance = probe_tolerance;
  if (deterministic) config.sampling_seed_base = static_cast<uint64_t>(run.seed);
  return config;
}

}  // namespace moerl
