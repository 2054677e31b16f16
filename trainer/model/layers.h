// The modules of one Qwen3 / Qwen3-MoE decoder layer, as plain
// torch::nn::Modules for one device. Parameter names follow transformers v5's
// in-memory names, so a module path plus parameter name is the HF name
// (self_attn.q_proj.weight, mlp.gate.weight, mlp.experts.gate_up_proj, ...).
//
//   h = h + Attention(RmsNorm_in(h));  h = h + Mlp_or_Moe(RmsNorm_post(h))
//
// The math of each step is in primitives.h, attention.h and moe.h; these
// classes own the weights and wire the steps. They know nothing of
// parallelism: trainer/parallel/ shards them from outside (it may swap the
// MoE block's TokenDispatcher).
//
//   auto layer = std::make_shared<DecoderLayer>(config, /*layer_index=*/0);
//   LayerOutput out = layer->Forward(h_td, rope, layout, /*cache=*/nullptr);
//
// Threading: like any nn::Module, thread-compatible; one forward at a time.
#ifndef MOERL_TRAINER_MODEL_LAYERS_H_
#define MOERL_TRAINER_MODEL_LAYERS_H_

#include <torch/nn/module.h>

#include <functional>
#include <memory>

#include "trainer/model/attention.h"
#include "trainer/model/config.h"
#include "trainer/model/moe.h"
#include "trainer/model/primitives.h"

namespace moerl {

enum class ExpertPath {
  kGrouped,    // dispatcher + grouped GEMMs (default)
  kReference,  // per-expert loop, the reference
};

// A module holding one tensor named "weight" (a bias-free linear, a norm, an
// embedding table). It may hold a slice of the full tensor along one dim
// (tensor parallelism, set from outside by KeepSlice): initialization and
// checkpoint loading then take that slice of the full tensor.
class WeightModule : public torch::nn::Module {
 public:
  explicit WeightModule(at::Tensor init);
  // Keeps rows [start, start + length) along `dim` of the full tensor and
  // frees the rest (the same parameter, resized). CHECKs the range.
  void KeepSlice(int64_t dim, int64_t start, int64_t length);
  bool sliced() const { return slice_dim_ >= 0; }
  int64_t slice_dim() const { return slice_dim_; }
  int64_t slice_start() const { return slice_start_; }
  int64_t full_size() const { return full_size_; }  // along slice_dim

  at::Tensor weight;

 private:
  int64_t slice_dim_ = -1, slice_start_ = 0, full_size_ = 0;
};

// Maps installed from outside around a block's matmuls (trainer/parallel
// puts its communication here: tensor and sequence parallelism). `before`
// turns the block's input into what the column projections (q/k/v,
// gate/up) read; `after` turns the row projection's (o, down) output into
// the block's output. Unset: identity.
struct BlockMaps {
  std::function<at::Tensor(const at::Tensor&)> before, after;
};

class Attention : public torch::nn::Module {
 public:
  Attention(const ModelConfig& config, int64_t layer_index);
  // x_td: normed hidden states. Returns [T, D].
  at::Tensor Forward(const at::Tensor& x_td, const RopeTables& rope, const PackedLayout& layout,
                     KvCache* cache);

  // Head counts come from the weights (q_proj / k_proj rows / head_dim), so
  // a module holding a slice of the heads attends over those heads only.
  void set_maps(BlockMaps maps) { maps_ = std::move(maps); }
  // The attention itself on normed, RoPE'd q_thd / k_tkd / v_tkd, returning
  // [T, h, d]. Unset: PackedCausalAttention over the layout. trainer/parallel
  // installs context-parallel attention (the rows are then a part of the
  // packed tokens and the core knows which); no KV cache with a core.
  using Core = std::function<at::Tensor(const at::Tensor& q_thd, const at::Tensor& k_tkd, const at::Tensor& v_tkd)>;
  void set_core(Core core) { core_ = std::move(core); }

  std::shared_ptr<WeightModule> q_proj, k_proj, v_proj, o_proj, q_norm, k_norm;

 private:
  BlockMaps maps_;
  Core core_;
  int64_t layer_index_, head_dim_;
  double eps_;
};

class DenseMlp : public torch::nn::Module {
 public:
  DenseMlp(int64_t hidden, int64_t intermediate);
  // The intermediate size is that of the weights (a slice of it is fine).
  at::Tensor Forward(const at::Tensor& x_td);
  void set_maps(BlockMaps maps) { maps_ = std::move(maps); }
  std::shared_ptr<WeightModule> gate_proj, up_proj, down_proj;

 private:
  BlockMaps maps_;
};

// Experts stored fused like transformers v5: gate_up_proj [E, 2F, D] (gate
// rows first), down_proj [E, D, F]. Under expert parallelism a rank holds a
// contiguous range [first_expert, first_expert + num_local) of the E experts
// and its tensors have num_local rows; parameter names do not change.
class Experts : public torch::nn::Module {
 public:
  Experts(int64_t num_experts, int64_t hidden, int64_t intermediate);
  // Keeps experts [first, first + count) of those held now and frees the
  // others' weights (the same parameters, resized). CHECKs the range.
  void KeepRange(int64_t first, int64_t count);
  // Keeps intermediate rows [start, start + length) of every expert (gate and
  // up rows, down columns; expert tensor parallelism). CHECKs the range.
  void KeepIntermediateSlice(int64_t start, int64_t length);
  // This module's part of a full-model tensor ([E, 2F, D] gate_up or
  // [E, D, F] down): the held experts and intermediate slice.
  at::Tensor HeldPart(const at::Tensor& full, bool gate_up) const;
  int64_t intermediate_start() const { return intermediate_start_; }
  int64_t full_intermediate() const { return full_intermediate_; }  // F of the whole model
  int64_t num_experts() const { return num_experts_; }  // E, of the whole model
  int64_t first_expert() const { return first_expert_; }
  int64_t num_local() const { return gate_up_proj.size(0); }
  bool holds_all() const { return num_local() == num_experts_; }

  at::Tensor gate_up_proj;
  at::Tensor down_proj;

 private:
  int64_t num_experts_;
  int64_t first_expert_ = 0;
  int64_t intermediate_start_ = 0, full_intermediate_;
};

class SparseMoe : public torch::nn::Module {
 public:
  explicit SparseMoe(const ModelConfig& config);
  // Returns y_td; fills routing (router logits + top-k) for the losses.
  // forced_ids_tk: router replay (see Route), or undefined.
  at::Tensor Forward(const at::Tensor& x_td, Routing* routing, const at::Tensor& forced_ids_tk = at::Tensor());
  void set_dispatcher(std::shared_ptr<TokenDispatcher> d) { dispatcher_ = std::move(d); }
  // `before` maps x_td before the router, `after` the combined output.
  void set_maps(BlockMaps maps) { maps_ = std::move(maps); }
  void set_expert_path(ExpertPath p) { path_ = p; }

  std::shared_ptr<WeightModule> gate;  // router [E, D]
  std::shared_ptr<Experts> experts;

 private:
  int64_t num_experts_, top_k_;
  bool norm_topk_prob_;
  ExpertPath path_ = ExpertPath::kGrouped;
  std::shared_ptr<TokenDispatcher> dispatcher_;
  BlockMaps maps_;
};

struct LayerOutput {
  at::Tensor h_td;
  Routing routing;  // empty for dense layers
};

class DecoderLayer : public torch::nn::Module {
 public:
  DecoderLayer(const ModelConfig& config, int64_t layer_index);
  LayerOutput Forward(const at::Tensor& h_td, const RopeTables& rope, const PackedLayout& layout,
                      KvCache* cache, const at::Tensor& forced_ids_tk = at::Tensor());
  bool is_moe() const { return moe != nullptr; }

  std::shared_ptr<WeightModule> input_layernorm, post_attention_layernorm;
  std::shared_ptr<Attention> self_attn;
  std::shared_ptr<DenseMlp> mlp;  // exactly one of mlp / moe is set
  std::shared_ptr<SparseMoe> moe;

 private:
  double eps_;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_LAYERS_H_
