// DecodeForward: the inference-only forward of one new token per live
// sequence (a decode step), on the weights of a Qwen3Model, for fp32 models.
//
// Same math as Qwen3Model::Forward over a KV cache (RMSNorm in fp32, QK-norm,
// RoPE from the same MakeRopeTables, causal attention over the slot's past,
// router softmax -> top-k -> renormalise, SwiGLU experts, weighted combine),
// but written for a handful of rows: plain loops on raw pointers for the
// per-row math and SmallGemmNT for every weight matrix, so a step is one
// pass over the weights (memory-bound) with no per-op dispatch and no
// autograd; the large buffers are reused from step to step. Results differ from the training
// forward by float noise only (summation order); the engine's deterministic
// mode rescores with the training forward when bits must match.
//
// Shape letters: b rows (live sequences), d hidden, h query heads, k KV
// heads, e experts, f expert FFN width, v vocabulary.
//
//   KvCache cache = ...;  // empty, or filled by earlier Steps (the prefill is Steps too)
//   DecodeForward decoder(model, &cache);
//   const std::vector<float>& hidden_bd = decoder.Step(tokens, slots);  // advances lengths
//   decoder.Logits(hidden_bd.data(), tokens.size(), logits_bv);        // [b, v]
//
// Supported(model) says when it applies (fp32 weights, all experts local);
// otherwise use Qwen3Model::Forward. Threading: one Step at a time; the
// model's weights must not change while a DecodeForward is alive (it keeps
// raw pointers). The GEMMs use at::get_num_threads() threads.
#ifndef MOERL_ROLLOUT_ENGINE_DECODE_FORWARD_H_
#define MOERL_ROLLOUT_ENGINE_DECODE_FORWARD_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "trainer/model/model.h"

namespace moerl {

class DecodeForward {
 public:
  static bool Supported(const Qwen3Model& model);

  // Steps of at most this many rows are batch-invariant (SmallGemmNT).
  static constexpr int64_t kSmallGemmMaxRows = 16;

  DecodeForward(Qwen3Model& model, KvCache* cache);

  // Row i is token tokens[i] of the sequence in cache slot slots[i]. Rows of
  // one slot are consecutive positions in row order after the slot's cached
  // length (one row per slot for a decode step; a whole prompt per slot for a
  // prefill). Writes their keys/values, advances the lengths and returns the
  // final-normed hidden states [b, d] (scratch owned by the decoder: valid
  // until the next Step). Few rows (<= kSmallGemmMaxRows) use SmallGemmNT,
  // whose result for a row does not depend on the other rows; more use MKL.
  const std::vector<float>& Step(const std::vector<int64_t>& tokens, const std::vector<int64_t>& slots);

  // The experts the last Step chose: [rows, moe_layers, top_k] ids, MoE
  // layers in layer order, each row's ids in descending router probability
  // (the order of the training forward's topk_ids_tk). Valid until the next Step.
  const std::vector<int32_t>& routes() const { return routes_bmk_; }

  // logits_bv = hidden_bd lm_head^T for `rows` rows (fp32, [rows, v]).
  void Logits(const float* hidden_bd, int64_t rows, float* logits_bv) const;

 private:
  struct LayerWeights {
    const float *input_norm, *post_norm, *q, *k, *v, *o, *q_norm, *k_norm;
    const float *router = nullptr, *gate_up = nullptr, *down = nullptr;          // MoE
    const float *mlp_gate = nullptr, *mlp_up = nullptr, *mlp_down = nullptr;     // dense
    int64_t ffn = 0;  // expert FFN width (MoE) or intermediate size (dense)
  };

  void Attention(int64_t layer, int64_t rows, const std::vector<int64_t>& slots);
  void Moe(const LayerWeights& w, int64_t rows, int64_t moe_index);
  void DenseMlp(const LayerWeights& w, int64_t rows);

  ModelConfig config_;
  KvCache* cache_;
  std::vector<LayerWeights> layers_;
  at::Tensor embed_vd_, final_norm_d_, lm_head_vd_;
  at::Tensor cos_pd_, sin_pd_;  // RoPE tables for positions [0, cache max_len)
  // Scratch, reused across steps.
  std::vector<int64_t> positions_;  // per row of the current Step
  int64_t moe_layers_ = 0;
  std::vector<int32_t> routes_bmk_;  // [rows, moe_layers, top_k] of the last Step
  std::vector<float> h_bd_, x_bd_, q_, k_, v_, attn_, y_bd_, out_bd_, router_be_, rows_md_, gu_mf_,
      act_mf_, expert_out_md_, scores_;
};

}  // namespace moerl

#endif  // MOERL_ROLLOUT_ENGINE_DECODE_FORWARD_H_
