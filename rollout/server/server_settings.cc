#include "rollout/server/server_settings.h"

#include "absl/strings/str_cat.h"
#include "common/hf_cache.h"
#include "common/status.h"

namespace moerl {

void ServerSettings::Declare(ConfigSchema* schema) {
  schema->String("actor.path", &actor_path, "model directory (HF layout) or a run's weights/ folder");
  schema->String("sglang.model_path", &sglang_model_path, "model to serve; wins over actor.path");
  schema->Choice("sglang.dtype", &dtype, {"auto", "float32", "bfloat16"}, "weights and KV cache dtype");
  schema->OptionalInt("sglang.max_running_requests", &max_running_requests,
                      "KV slots: sequences decoded together (null: 16)", 1);
  schema->OptionalInt("sglang.context_length", &context_length,
                      "positions per KV slot (null: the model's max_position_embeddings)", 1);
  schema->OptionalInt("sglang.random_seed", &random_seed, "seed of per-request sampling seeds (null: seed)", 0);
  schema->Double("sglang.mem_fraction_static", &mem_fraction_static, "accepted, unused");
  schema->Int("seed", &seed, "seed (sglang.random_seed wins)", 0);
  schema->OwnSection("server");
  schema->String("server.host", &host, "address to bind");
  schema->Int("server.port", &port, "port to bind (0: pick a free one)", 0, 65535);
  schema->String("server.address_file", &address_file, "file to write http://HOST:PORT into once listening");
  schema->Bool("server.deterministic", &deterministic,
               "recompute log-probs with the training forward (bit-equal to the trainer)");
  schema->Bool("server.batch_prefill", &batch_prefill,
               "prefill requests admitted together in one forward (false: each alone, batch-invariant bits)");
  schema->Bool("actor.megatron.use_deterministic_algorithms", &deterministic_algorithms,
               "a reproducible run: batch-invariant generation (no batched prefill, <= 16 rows per step)");
  schema->Int("server.http_threads", &http_threads, "HTTP worker threads", 2, 4096);
  schema->String("server.weight_version", &weight_version, "initial weight_version (default: N of v<N>, else default)");
}

absl::Status ServerSettings::Validate() const {
  if (ModelPath().empty()) {
    return absl::InvalidArgumentError(
        "no model to serve: set actor.path (or sglang.model_path) to an HF checkpoint folder or a weights/ folder");
  }
  if (deterministic && ResolvedDtype() != "float32") {
    return absl::InvalidArgumentError(absl::StrCat("server.deterministic=true needs sglang.dtype=float32, found ",
                                                   dtype, "; drop one of the two"));
  }
  return absl::OkStatus();
}

absl::Status ServerSettings::Load(const ConfigTree& tree) {
  ConfigSchema schema;
  Declare(&schema);
  MOERL_RETURN_IF_ERROR(schema.Read(tree));
  // Hugging Face model ids name their snapshot in the local cache.
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("actor.path", &actor_path));
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("sglang.model_path", &sglang_model_path));
  return Validate();
}

}  // namespace moerl
