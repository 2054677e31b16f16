// The Hugging Face config.json fields the planner needs, for Qwen3-MoE
// (qwen3_moe) and dense Qwen3 (num_experts absent or 0) models.
//
//   MOERL_ASSIGN_OR_RETURN(ModelShape shape, LoadModelShape("/models/Qwen3-30B-A3B"));
//   shape.num_experts;   // 128
//
// `path` may be the config.json file or a directory holding it (a directory
// with only config.json is enough). Pure value; thread-compatible.
#ifndef MOERL_TOOLS_ALLOC_PLAN_MODEL_CONFIG_H_
#define MOERL_TOOLS_ALLOC_PLAN_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moerl {

struct ModelShape {
  std::string model_type;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t intermediate_size = 0;      // dense MLP layers
  int64_t num_experts = 0;            // 0: dense model
  int64_t experts_per_token = 0;
  int64_t moe_intermediate_size = 0;  // per expert
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  bool tie_word_embeddings = false;

  // Whether layer `layer` (0-based) is an MoE layer (HF Qwen3-MoE rule).
  bool IsMoeLayer(int64_t layer) const;
  int64_t NumMoeLayers() const;
};

// Parses config.json text; `source` names it in errors.
absl::StatusOr<ModelShape> ParseModelShape(absl::string_view json_text, absl::string_view source);
// Reads `path` (a config.json or a directory holding one).
absl::StatusOr<ModelShape> LoadModelShape(const std::string& path);

}  // namespace moerl

#endif  // MOERL_TOOLS_ALLOC_PLAN_MODEL_CONFIG_H_
