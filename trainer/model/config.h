// ModelConfig: the fields of a Hugging Face Qwen3-MoE / Qwen3 `config.json`
// that define the network, parsed and validated (torch-free).
//
//   MOERL_ASSIGN_OR_RETURN(ModelConfig cfg, ModelConfig::FromFile(dir + "/config.json"));
//   cfg.IsMoeLayer(3);   // HF's rule: not in mlp_only_layers, experts > 0,
//                        // (L + 1) % decoder_sparse_step == 0
//
// Accepts model_type "qwen3_moe" and "qwen3" (dense: no experts), the
// `num_local_experts` alias, and rope_theta either at top level or inside
// `rope_parameters` / `rope_scaling` (transformers v5). Unsupported features
// (attention_bias, sliding windows, non-default RoPE scaling, activations other
// than silu) are errors naming the key. The one parser of config.json: the
// trainer builds the model from it and tools/alloc_plan sizes allocations
// with it, so keep this target free of torch. Plain value type;
// thread-compatible.
#ifndef MOERL_TRAINER_MODEL_CONFIG_H_
#define MOERL_TRAINER_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moerl {

struct ModelConfig {
  std::string model_type = "qwen3_moe";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // dense MLP layers
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 1e6;
  bool tie_word_embeddings = false;
  // MoE (num_experts == 0 for dense Qwen3).
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  bool norm_topk_prob = true;
  double router_aux_loss_coef = 0.0;
  double router_z_loss_coef = 0.0;  // moerl extension ("router_z_loss_coef"), 0 in HF configs
  double initializer_range = 0.02;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  static absl::StatusOr<ModelConfig> FromJson(const std::string& text, const std::string& where);
  static absl::StatusOr<ModelConfig> FromFile(const std::string& path);
  // The HF config.json for this config (written next to saved weights).
  std::string ToJson() const;
  absl::Status Validate() const;

  bool IsMoeLayer(int64_t layer) const;
  int64_t NumMoeLayers() const;
  bool HasMoeLayers() const;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_CONFIG_H_
