// ServerSettings: the configuration keys the inference server reads (AReaL's
// sglang.* names where AReaL has them, a moerl `server` section for the rest),
// bound to one small typed struct.
//
//   ServerSettings settings;
//   MOERL_RETURN_IF_ERROR(settings.Load(tree));   // Declare + Read + Validate
//
// Keys (docs/server.md):
//   sglang.model_path, actor.path  the model: an HF checkpoint folder, or a run's
//                                  weights/ folder (its LATEST names v<N>);
//                                  sglang.model_path wins
//   sglang.dtype                   float32 (default; "auto" too) or bfloat16
//   sglang.max_running_requests    KV slots = sequences decoded together (16)
//   sglang.context_length          positions per slot (default: the model's
//                                  max_position_embeddings, at most 8192);
//                                  prompt + max_new_tokens must fit
//   sglang.random_seed             seed of per-request sampling seeds (default: seed)
//   sglang.mem_fraction_static     accepted, unused (the budget is the two above)
//   server.host                    default 127.0.0.1
//   server.port                    default 0: pick a free port
//   server.address_file            write "http://HOST:PORT" there once listening
//   server.deterministic           rescore log-probs with the training forward
//                                  (bit-equal to the trainer's ScoreSequences)
//   server.batch_prefill           prefill requests admitted together in one
//                                  forward (default true; false: each alone, so
//                                  outputs are bit-identical alone or batched)
//   actor.megatron.use_deterministic_algorithms
//                                  a reproducible run: batch_prefill off and at
//                                  most 16 sequences decoded together, so each
//                                  request's tokens do not depend on what else
//                                  runs (the bridge seeds every request)
//   server.http_threads            HTTP worker threads (default 64: one per
//                                  waiting client plus the control endpoints)
//   server.weight_version          initial weight_version (default: N for a
//                                  folder v<N>, else "default")
// The `server` section is owned: an unknown server.* key is an error.
//
// Plain data; thread-compatible.
#ifndef MOERL_ROLLOUT_SERVER_SERVER_SETTINGS_H_
#define MOERL_ROLLOUT_SERVER_SERVER_SETTINGS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/config/config_tree.h"
#include "common/config/schema.h"

namespace moerl {

struct ServerSettings {
  std::string actor_path;
  std::string sglang_model_path;
  std::string dtype = "float32";
  std::optional<int64_t> max_running_requests;
  std::optional<int64_t> context_length;
  std::optional<int64_t> random_seed;
  double mem_fraction_static = 0.9;
  int64_t seed = 1;

  std::string host = "127.0.0.1";
  int64_t port = 0;
  std::string address_file;
  bool deterministic = false;
  bool batch_prefill = true;
  bool deterministic_algorithms = false;  // actor.megatron.use_deterministic_algorithms
  int64_t http_threads = 64;
  std::string weight_version;

  void Declare(ConfigSchema* schema);
  absl::Status Validate() const;
  absl::Status Load(const ConfigTree& tree);

  // sglang.model_path, else actor.path.
  const std::string& ModelPath() const { return sglang_model_path.empty() ? actor_path : sglang_model_path; }
  // "auto" reads as float32.
  std::string ResolvedDtype() const { return dtype == "auto" ? "float32" : dtype; }
  int64_t Seed() const { return random_seed.value_or(seed); }
};

}  // namespace moerl

#endif  // MOERL_ROLLOUT_SERVER_SERVER_SETTINGS_H_
