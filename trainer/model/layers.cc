#include "trainer/model/layers.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/ones.h>
#include <ATen/core/grad_mode.h>

#include "common/logging.h"

namespace moerl {
namespace {

at::Tensor Empty(std::vector<int64_t> shape) {
  return at::empty(shape, at::TensorOptions().dtype(at::kFloat));
}

}  // namespace

WeightModule::WeightModule(at::Tensor init) { weight = register_parameter("weight", std::move(init)); }

void WeightModule::KeepSlice(int64_t dim, int64_t start, int64_t length) {
  MOERL_CHECK(!sliced()) << "a weight is sliced once";
  MOERL_CHECK(dim >= 0 && dim < weight.dim() && start >= 0 && length >= 1 && start + length <= weight.size(dim))
      << "slice [" << start << ", " << start + length << ") of dim " << dim << " of " << weight.sizes();
  at::NoGradGuard no_grad;
  full_size_ = weight.size(dim);
  slice_dim_ = dim;
  slice_start_ = start;
  weight.set_data(weight.narrow(dim, start, length).clone());
}

namespace {

at::Tensor Apply(const std::function<at::Tensor(const at::Tensor&)>& map, const at::Tensor& x) {
  return map ? map(x) : x;
}

}  // namespace

Attention::Attention(const ModelConfig& c, int64_t layer_index)
    : layer_index_(layer_index),
      head_dim_(c.head_dim),
      eps_(c.rms_norm_eps) {
  const int64_t heads = c.num_attention_heads, kv_heads = c.num_key_value_heads;
  q_proj = register_module("q_proj", std::make_shared<WeightModule>(Empty({heads * head_dim_, c.hidden_size})));
  k_proj = register_module("k_proj", std::make_shared<WeightModule>(Empty({kv_heads * head_dim_, c.hidden_size})));
  v_proj = register_module("v_proj", std::make_shared<WeightModule>(Empty({kv_heads * head_dim_, c.hidden_size})));
  o_proj = register_module("o_proj", std::make_shared<WeightModule>(Empty({c.hidden_size, heads * head_dim_})));
  q_norm = register_module("q_norm", std::make_shared<WeightModule>(at::ones({head_dim_})));
  k_norm = register_module("k_norm", std::make_shared<WeightModule>(at::ones({head_dim_})));
}

at::Tensor Attention::Forward(const at::Tensor& in_td, const RopeTables& rope, const PackedLayout& layout,
                              KvCache* cache) {
  const at::Tensor x_td = Apply(maps_.before, in_td);
  const int64_t tokens = x_td.size(0);
  const int64_t heads = q_proj->weight.size(0) / head_dim_, kv_heads = k_proj->weight.size(0) / head_dim_;
  // QK-norm per head over head_dim, before RoPE.
  at::Tensor q_thd = RmsNorm(at::linear(x_td, q_proj->weight).view({tokens, heads, head_dim_}),
                             q_norm->weight, eps_);
  at::Tensor k_tkd = RmsNorm(at::linear(x_td, k_proj->weight).view({tokens, kv_heads, head_dim_}),
                             k_norm->weight, eps_);
  at::Tensor v_tkd = at::linear(x_td, v_proj->weight).view({tokens, kv_heads, head_dim_});
  q_thd = ApplyRope(q_thd, rope);
  k_tkd = ApplyRope(k_tkd, rope);
  at::Tensor out_thd;
  if (core_) {
    MOERL_CHECK(cache == nullptr) << "an attention core (context parallelism) runs without a KV cache";
    out_thd = core_(q_thd, k_tkd, v_tkd);
  } else {
    out_thd = PackedCausalAttention(q_thd, k_tkd, v_tkd, layout, cache, layer_index_);
  }
  // [T, h*d] -> [T, D]
  return Apply(maps_.after, at::linear(out_thd.reshape({tokens, heads * head_dim_}), o_proj->weight));
}

DenseMlp::DenseMlp(int64_t hidden, int64_t intermediate) {
  gate_proj = register_module("gate_proj", std::make_shared<WeightModule>(Empty({intermediate, hidden})));
  up_proj = register_module("up_proj", std::make_shared<WeightModule>(Empty({intermediate, hidden})));
  down_proj = register_module("down_proj", std::make_shared<WeightModule>(Empty({hidden, intermediate})));
}

at::Tensor DenseMlp::Forward(const at::Tensor& x_td) {
  return Apply(maps_.after, SwiGlu(Apply(maps_.before, x_td), gate_proj->weight, up_proj->weight, down_proj->weight));
}

Experts::Experts(int64_t num_experts, int64_t hidden, int64_t intermediate)
    : num_experts_(num_experts), full_intermediate_(intermediate) {
  gate_up_proj = register_parameter("gate_up_proj", Empty({num_experts, 2 * intermediate, hidden}));
  down_proj = register_parameter("down_proj", Empty({num_experts, hidden, intermediate}));
}

void Experts::KeepRange(int64_t first, int64_t count) {
  MOERL_CHECK(first >= first_expert_ && count >= 1 && first + count <= first_expert_ + num_local())
      << "experts [" << first << ", " << first + count << ") are not among those held, [" << first_expert_ << ", "
      << first_expert_ + num_local() << ")";
  at::NoGradGuard no_grad;
  // set_data keeps the registered parameters (and optimizer references)
  // while dropping the other experts' storage.
  gate_up_proj.set_data(gate_up_proj.narrow(0, first - first_expert_, count).clone());
  down_proj.set_data(down_proj.narrow(0, first - first_expert_, count).clone());
  first_expert_ = first;
}

void Experts::KeepIntermediateSlice(int64_t start, int64_t length) {
  const int64_t f = down_proj.size(2);
  MOERL_CHECK(f == full_intermediate_ && start >= 0 && length >= 1 && start + length <= f)
      << "intermediate slice [" << start << ", " << start + length << ") of " << f << " (sliced once)";
  at::NoGradGuard no_grad;
  // [E, 2F, D]: gate rows [0, F), up rows [F, 2F) -> [E, 2 length, D].
  gate_up_proj.set_data(
      at::cat({gate_up_proj.narrow(1, start, length), gate_up_proj.narrow(1, f + start, length)}, 1));
  down_proj.set_data(down_proj.narrow(2, start, length).clone());  // [E, D, F] -> [E, D, length]
  intermediate_start_ = start;
}

at::Tensor Experts::HeldPart(const at::Tensor& full, bool gate_up) const {
  at::Tensor part = full.narrow(0, first_expert_, num_local());
  const int64_t length = down_proj.size(2);
  if (length == full_intermediate_) return part;
  if (!gate_up) return part.narrow(2, intermediate_start_, length);
  return at::cat({part.narrow(1, intermediate_start_, length),
                  part.narrow(1, full_intermediate_ + intermediate_start_, length)},
                 1);
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

at::Tensor SparseMoe::Forward(const at::Tensor& in_td, Routing* routing, const at::Tensor& forced_ids_tk) {
  const at::Tensor x_td = Apply(maps_.before, in_td);
  *routing = Route(x_td, gate->weight, top_k_, norm_topk_prob_, forced_ids_tk);
  if (path_ == ExpertPath::kReference) {
    MOERL_CHECK(experts->holds_all()) << "the reference expert loop needs every expert on this rank";
    return Apply(maps_.after, ExpertLoopReference(x_td, *routing, experts->gate_up_proj, experts->down_proj));
  }
  // The dispatcher sends this rank the tokens of exactly the experts it holds
  // (trainer/parallel's ParallelizeQwen3 sets both together).
  MOERL_CHECK(dispatcher_->FirstLocalExpert(num_experts_) == experts->first_expert() &&
              dispatcher_->NumLocalExperts(num_experts_) == experts->num_local())
      << "the dispatcher serves experts [" << dispatcher_->FirstLocalExpert(num_experts_) << ", +"
      << dispatcher_->NumLocalExperts(num_experts_) << ") but the layer holds [" << experts->first_expert() << ", +"
      << experts->num_local() << ")";
  DispatchedTokens d = dispatcher_->Dispatch(x_td, *routing, num_experts_);
  at::Tensor out_nd = GroupedExperts(d.tokens_nd, d.tokens_per_expert, experts->gate_up_proj, experts->down_proj);
  return Apply(maps_.after, dispatcher_->Combine(out_nd, d));
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
