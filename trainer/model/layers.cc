#include "trainer/model/layers.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/ones.h>

namespace moerl {
namespace {

at::Tensor Empty(std::vector<int64_t> shape) {
  return at::empty(shape, at::TensorOptions().dtype(at::kFloat));
}

}  // namespace

WeightModule::WeightModule(at::Tensor init) { weight = register_parameter("weight", std::move(init)); }

Attention::Attention(const ModelConfig& c, int64_t layer_index)
    : layer_index_(layer_index),
      heads_(c.num_attention_heads),
      kv_heads_(c.num_key_value_heads),
      head_dim_(c.head_dim),
      eps_(c.rms_norm_eps) {
  q_proj = register_module("q_proj", std::make_shared<WeightModule>(Empty({heads_ * head_dim_, c.hidden_size})));
  k_proj = register_module("k_proj", std::make_shared<WeightModule>(Empty({kv_heads_ * head_dim_, c.hidden_size})));
  v_proj = register_module("v_proj", std::make_shared<WeightModule>(Empty({kv_heads_ * head_dim_, c.hidden_size})));
  o_proj = register_module("o_proj", std::make_shared<WeightModule>(Empty({c.hidden_size, heads_ * head_dim_})));
  q_norm = register_module("q_norm", std::make_shared<WeightModule>(at::ones({head_dim_})));
  k_norm = register_module("k_norm", std::make_shared<WeightModule>(at::ones({head_dim_})));
}

at::Tensor Attention::Forward(const at::Tensor& x_td, const RopeTables& rope, const PackedLayout& layout,
                              KvCache* cache) {
  const int64_t tokens = x_td.size(0);
  // QK-norm per head over head_dim, before RoPE.
  at::Tensor q_thd = RmsNorm(at::linear(x_td, q_proj->weight).view({tokens, heads_, head_dim_}),
                             q_norm->weight, eps_);
  at::Tensor k_tkd = RmsNorm(at::linear(x_td, k_proj->weight).view({tokens, kv_heads_, head_dim_}),
                             k_norm->weight, eps_);
  at::Tensor v_tkd = at::linear(x_td, v_proj->weight).view({tokens, kv_heads_, head_dim_});
  q_thd = ApplyRope(q_thd, rope);
  k_tkd = ApplyRope(k_tkd, rope);
  at::Tensor out_thd = PackedCausalAttention(q_thd, k_tkd, v_tkd, layout, cache, layer_index_);
  return at::linear(out_thd.reshape({tokens, heads_ * head_dim_}), o_proj->weight);  // [T, h*d] -> [T, D]
}

DenseMlp::DenseMlp(int64_t hidden, int64_t intermediate) {
  gate_proj = register_module("gate_proj", std::make_shared<WeightModule>(Empty({intermediate, hidden})));
  up_proj = register_module("up_proj", std::make_shared<WeightModule>(Empty({intermediate, hidden})));
  down_proj = register_module("down_proj", std::make_shared<WeightModule>(Empty({hidden, intermediate})));
}

at::Tensor DenseMlp::Forward(const at::Tensor& x_td) {
  return SwiGlu(x_td, gate_proj->weight, up_proj->weight, down_proj->weight);
}

Experts::Experts(int64_t num_experts, int64_t hidden, int64_t intermediate) {
  gate_up_proj = register_parameter("gate_up_proj", Empty({num_experts, 2 * intermediate, hidden}));
  down_proj = register_parameter("down_proj", Empty({num_experts, hidden, intermediate}));
}

SparseMoe::SparseMoe(const ModelConfig& c)
    : num_experts_(c.num_experts),
      top_k_(c.num_experts_per_tok),
      norm_topk_prob_(c.norm_topk_prob),
      dispatcher_(std::make_shared<LocalTokenDispatcher>()) {
  gate = register_module("gate", std::make_shared<WeightModule>(Empty({c.num_experts, c.hidden_size})));
  experts = register_module("experts",
                            std::make_shared<Experts>(c.num_experts, c.hidden_size, c.moe_intermediate_size));
}

at::Tensor SparseMoe::Forward(const at::Tensor& x_td, Routing* routing, const at::Tensor& forced_ids_tk) {
  *routing = Route(x_td, gate->weight, top_k_, norm_topk_prob_, forced_ids_tk);
  if (path_ == ExpertPath::kReference) {
    return ExpertLoopReference(x_td, *routing, experts->gate_up_proj, experts->down_proj);
  }
  DispatchedTokens d = dispatcher_->Dispatch(x_td, *routing, num_experts_);
  // The dispatcher's rank holds experts [first, first + count) of the full set.
  const int64_t first = dispatcher_->FirstLocalExpert(num_experts_);
  const int64_t count = dispatcher_->NumLocalExperts(num_experts_);
  at::Tensor gate_up = experts->gate_up_proj, down = experts->down_proj;
  if (gate_up.size(0) != count) {
    gate_up = gate_up.narrow(0, first, count);
    down = down.narrow(0, first, count);
  }
  at::Tensor out_nd = GroupedExperts(d.tokens_nd, d.tokens_per_expert, gate_up, down);
  return dispatcher_->Combine(out_nd, d);
}

DecoderLayer::DecoderLayer(const ModelConfig& c, int64_t layer_index) : eps_(c.rms_norm_eps) {
  self_attn = register_module("self_attn", std::make_shared<Attention>(c, layer_index));
  if (c.IsMoeLayer(layer_index)) {
    moe = register_module("mlp", std::make_shared<SparseMoe>(c));
  } else {
    mlp = register_module("mlp", std::make_shared<DenseMlp>(c.hidden_size, c.intermediate_size));
  }
  input_layernorm = register_module("input_layernorm", std::make_shared<WeightModule>(at::ones({c.hidden_size})));
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<WeightModule>(at::ones({c.hidden_size})));
}

LayerOutput DecoderLayer::Forward(const at::Tensor& h_td, const RopeTables& rope, const PackedLayout& layout,
                                  KvCache* cache, const at::Tensor& forced_ids_tk) {
  LayerOutput out;
  at::Tensor h = h_td + self_attn->Forward(RmsNorm(h_td, input_layernorm->weight, eps_), rope, layout, cache);
  at::Tensor x_td = RmsNorm(h, post_attention_layernorm->weight, eps_);
  at::Tensor y_td = moe ? moe->Forward(x_td, &out.routing, forced_ids_tk) : mlp->Forward(x_td);
  out.h_td = h + y_td;
  return out;
}

}  // namespace moerl
