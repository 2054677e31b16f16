#include "trainer/model/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "common/logging.h"
#include "trainer/model/lm_loss.h"

namespace moerl {

ModelInput ModelInput::Pack(const std::vector<std::vector<int64_t>>& sequences) {
  std::vector<int64_t> tokens, positions;
  ModelInput in;
  for (const auto& seq : sequences) {
    for (size_t i = 0; i < seq.size(); ++i) {
      tokens.push_back(seq[i]);
      positions.push_back(static_cast<int64_t>(i));
    }
    in.layout.seq_lens.push_back(static_cast<int64_t>(seq.size()));
  }
  in.tokens_t = at::tensor(tokens, at::TensorOptions().dtype(at::kLong));
  in.positions_t = at::tensor(positions, at::TensorOptions().dtype(at::kLong));
  return in;
}

Qwen3Model::Qwen3Model(const ModelConfig& c) : Qwen3Model(c, Uninitialized{}) { InitializeWeights(0); }

Qwen3Model::Qwen3Model(const ModelConfig& c, Uninitialized) : config_(c) {
  MOERL_CHECK(c.Validate().ok());
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  backbone_ = register_module("model", std::make_shared<torch::nn::Module>());
  embed_tokens_ = backbone_->register_module(
      "embed_tokens", std::make_shared<WeightModule>(at::empty({c.vocab_size, c.hidden_size}, f32)));
  auto layers = backbone_->register_module("layers", std::make_shared<torch::nn::Module>());
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    layers_.push_back(layers->register_module(std::to_string(l), std::make_shared<DecoderLayer>(c, l)));
  }
  norm_ = backbone_->register_module("norm", std::make_shared<WeightModule>(at::ones({c.hidden_size}, f32)));
  if (!c.tie_word_embeddings) {
    lm_head_ = register_module(
        "lm_head", std::make_shared<WeightModule>(at::empty({c.vocab_size, c.hidden_size}, f32)));
  }
  for (auto& item : named_parameters(/*recurse=*/true)) full_shapes_.emplace_back(item.key(), item.value().sizes().vec());
}

void Qwen3Model::KeepStage(int64_t begin, int64_t end) {
  const int64_t num_layers = config_.num_hidden_layers;
  MOERL_CHECK(first_layer_ == 0 && static_cast<int64_t>(layers_.size()) == num_layers)
      << "KeepStage on a model that is already a stage";
  MOERL_CHECK(0 <= begin && begin < end && end <= num_layers) << "stage [" << begin << ", " << end << ")";
  auto layers = backbone_->named_children()["layers"];
  std::vector<std::shared_ptr<DecoderLayer>> kept;
  for (int64_t l = 0; l < num_layers; ++l) {
    if (l >= begin && l < end) {
      kept.push_back(layers_[l]);
    } else {
      layers->unregister_module(std::to_string(l));
    }
  }
  layers_ = std::move(kept);
  first_layer_ = begin;
  const bool last = end == num_layers;
  if (begin != 0 && !(last && config_.tie_word_embeddings)) {
    backbone_->unregister_module("embed_tokens");
    embed_tokens_ = nullptr;
  }
  if (!last) {
    backbone_->unregister_module("norm");
    norm_ = nullptr;
    if (lm_head_) {
      unregister_module("lm_head");
      lm_head_ = nullptr;
    }
  }
}

void Qwen3Model::InitializeWeights(uint64_t seed) {
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  // Every parameter of the whole model is drawn in order, held or not, and
  // partially held expert tensors draw their full shape and keep their
  // range, so the random stream (and every weight) does not depend on the
  // expert- or pipeline-parallel layout.
  std::map<const at::TensorImpl*, const Experts*> partial_experts;
  for (const auto& layer : layers_) {
    if (layer->moe && (!layer->moe->experts->holds_all() ||
                       layer->moe->experts->down_proj.size(2) != layer->moe->experts->full_intermediate())) {
      const Experts* e = layer->moe->experts.get();
      partial_experts[e->gate_up_proj.unsafeGetTensorImpl()] = e;
      partial_experts[e->down_proj.unsafeGetTensorImpl()] = e;
    }
  }
  // Weights holding a slice (tensor parallelism) likewise draw the full
  // tensor and keep their slice.
  std::map<const at::TensorImpl*, const WeightModule*> sliced;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto w = std::dynamic_pointer_cast<WeightModule>(module); w && w->sliced()) {
      sliced[w->weight.unsafeGetTensorImpl()] = w.get();
    }
  }
  // full_shapes_ lists every parameter of the whole model, unsliced, in
  // registration order; tensors another stage holds are drawn and dropped.
  auto held = named_parameters(/*recurse=*/true);
  const auto options = held.is_empty() ? at::TensorOptions().dtype(at::kFloat) : held[0].value().options();
  for (const auto& [name, full_shape] : full_shapes_) {
    at::Tensor* p = held.find(name);
    if (absl::EndsWith(name, "norm.weight")) {
      if (p != nullptr) p->fill_(1.0);
      continue;
    }
    const at::TensorImpl* impl = p != nullptr ? p->unsafeGetTensorImpl() : nullptr;
    auto slice_it = impl != nullptr ? sliced.find(impl) : sliced.end();
    auto expert_it = impl != nullptr ? partial_experts.find(impl) : partial_experts.end();
    if (p != nullptr && slice_it == sliced.end() && expert_it == partial_experts.end() && p->is_cpu()) {
      p->normal_(0.0, config_.initializer_range, gen);
      continue;
    }
    // Drawn on the host (the generator is a CPU one), so that a model on a
    // GPU gets the same values as on the host.
    at::Tensor full = at::empty(full_shape, (p != nullptr ? p->options() : options).device(at::kCPU));
    full.normal_(0.0, config_.initializer_range, gen);
    if (p == nullptr) continue;
    if (slice_it == sliced.end() && expert_it == partial_experts.end()) {
      p->copy_(full);
      continue;
    }
    if (slice_it != sliced.end()) {
      const WeightModule& w = *slice_it->second;
      MOERL_CHECK(full.size(w.slice_dim()) == w.full_size()) << name;
      p->copy_(full.narrow(w.slice_dim(), w.slice_start(), p->size(w.slice_dim())));
    } else {
      const Experts& e = *expert_it->second;
      p->copy_(e.HeldPart(full, impl == e.gate_up_proj.unsafeGetTensorImpl()));
    }
  }
}

ModelOutput Qwen3Model::Forward(const ModelInput& input) { return Forward(input, at::Tensor()); }

c10::Device Qwen3Model::device() const {
  if (embed_tokens_) return embed_tokens_->weight.device();
  const auto params = parameters(/*recurse=*/true);
  MOERL_CHECK(!params.empty()) << "a model without parameters has no device";
  return params[0].device();
}

ModelOutput Qwen3Model::Forward(const ModelInput& whole, const at::Tensor& stage_input_td) {
  ModelOutput out;
  // Context parallelism: the layers run on this rank's part of the tokens.
  ContextPart part;
  if (context_split_) {
    MOERL_CHECK(whole.cache == nullptr && holds_all_layers()) << "context parallelism: no KV cache, no pipeline stage";
    part = context_split_(whole);
  }
  const ModelInput& input = context_split_ ? part.input : whole;
  at::Tensor h_td;
  // Host-built inputs go to the model's device (a no-op on the host).
  const c10::Device device = is_first_stage() ? this->device() : stage_input_td.device();
  const at::Tensor tokens_t = input.tokens_t.to(device);
  if (is_first_stage()) {
    h_td = embedding_ ? embedding_(embed_tokens_->weight, tokens_t) : at::embedding(embed_tokens_->weight, tokens_t);
  } else {
    MOERL_CHECK(stage_input_td.defined()) << "stage from layer " << first_layer_ << " needs the previous stage's output";
    h_td = stage_input_td;
  }
  // MoE layers before this stage: router replay is indexed over the model.
  size_t moe_before = 0;
  for (int64_t l = 0; l < first_layer_; ++l) {
    if (config_.IsMoeLayer(l)) ++moe_before;
  }
  RopeTables rope = MakeRopeTables(input.positions_t.to(device), config_.head_dim, config_.rope_theta, h_td.scalar_type());
  std::vector<at::Tensor> router_logits;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const size_t moe_index = moe_before + out.moe_layers.size();
    at::Tensor forced = layers_[l]->is_moe() && moe_index < input.forced_topk_ids_tk.size()
                            ? input.forced_topk_ids_tk[moe_index]
                            : at::Tensor();
    if (forced.defined() && forced.size(0) != h_td.size(0)) {
      // Sequence parallel: the routes of this shard's rows.
      MOERL_CHECK(forced.size(0) == h_td.size(0) * sequence_shards_)
          << "replayed routes for " << forced.size(0) << " rows, hidden states of " << h_td.size(0) << " x "
          << sequence_shards_ << " shards";
      forced = forced.narrow(0, sequence_shard_ * h_td.size(0), h_td.size(0));
    }
    if (forced.defined()) forced = forced.to(device);
    LayerOutput lo = layers_[l]->Forward(h_td, rope, input.layout, input.cache, forced);
    h_td = lo.h_td;
    if (layers_[l]->is_moe()) {
      out.moe_layers.push_back(first_layer_ + static_cast<int64_t>(l));
      out.topk_ids_tk.push_back(lo.routing.topk_ids_tk);
      out.router_topk_ids_tk.push_back(lo.routing.router_topk_ids_tk);
      router_logits.push_back(lo.routing.logits_te);
    }
  }
  if (input.cache != nullptr && is_last_stage()) {
    for (size_t i = 0; i < input.layout.seq_lens.size(); ++i) {
      input.cache->lengths[input.cache->slot_of_segment[i]] += input.layout.seq_lens[i];
    }
  }
  if (!router_logits.empty() && part.real_t.defined()) {
    // The part's padding rows (anywhere in it), of this shard's rows.
    const int64_t rows = router_logits[0].size(0);
    at::Tensor real_t = part.real_t.narrow(0, rows == part.real_t.size(0) ? 0 : sequence_shard_ * rows, rows);
    if (!real_t.all().item<bool>()) {
      const at::Tensor keep = real_t.nonzero().reshape({-1});
      for (at::Tensor& logits_te : router_logits) logits_te = logits_te.index_select(0, keep);
    }
  } else if (!router_logits.empty() && input.padding_tokens > 0) {
    // The padding is the last rows of T. Router logits cover all T rows, or
    // (sequence parallel) this shard's T/shards.
    const int64_t total = input.tokens_t.size(0), rows = router_logits[0].size(0);
    const int64_t first = rows == total ? 0 : sequence_shard_ * rows;
    const int64_t real = std::clamp<int64_t>(total - input.padding_tokens - first, 0, rows);
    for (at::Tensor& logits_te : router_logits) logits_te = logits_te.narrow(0, 0, real);
  }
  if (!router_logits.empty()) {
    RouterPartials partials = RouterLossPartials(router_logits, config_.num_experts_per_tok, router_stats_.get());
    out.z_loss = partials.z;
    if (holds_all_layers()) {
      out.aux_loss = RouterAuxShare(partials.prob_sum_e, partials.stats);
    } else {
      out.aux_prob_sum_e = partials.prob_sum_e;
      out.router_stats = partials.stats;
    }
  }
  out.hidden_td = is_last_stage() ? RmsNorm(h_td, norm_->weight, config_.rms_norm_eps) : h_td;
  return out;
}

at::Tensor Qwen3Model::lm_head_weight() const {
  MOERL_CHECK(is_last_stage()) << "the LM head lives on the last pipeline stage";
  return lm_head_ ? lm_head_->weight : embed_tokens_->weight;
}

at::Tensor Qwen3Model::Logits(const at::Tensor& hidden_td) { return at::linear(hidden_td, lm_head_weight()); }

at::Tensor Qwen3Model::CausalLmLoss(const ModelInput& input) {
  ModelOutput out = Forward(input);
  // Rows that predict a next token of their own segment, and those targets.
  std::vector<int64_t> rows, targets;
  const at::Tensor host_tokens_t = input.tokens_t.to(at::kCPU).contiguous();
  const int64_t* tok = host_tokens_t.data_ptr<int64_t>();
  int64_t start = 0;
  for (int64_t len : input.layout.seq_lens) {
    for (int64_t i = 0; i + 1 < len; ++i) {
      rows.push_back(start + i);
      targets.push_back(tok[start + i + 1]);
    }
    start += len;
  }
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(out.hidden_td.device());
  // Fused LM head + cross-entropy in row chunks (lm_loss.h): no [N, V] fp32
  // logits or log-softmax, gradient computed in the same pass.
  at::Tensor loss = LinearCrossEntropyMean(out.hidden_td.index_select(0, at::tensor(rows, i64)),
                                           lm_head_weight(), at::tensor(targets, i64));
  if (out.aux_loss.defined() && config_.router_aux_loss_coef != 0.0) {
    loss = loss + out.aux_loss * config_.router_aux_loss_coef;
  }
  if (out.z_loss.defined() && config_.router_z_loss_coef != 0.0) {
    loss = loss + out.z_loss * config_.router_z_loss_coef;
  }
  return loss;
}

void Qwen3Model::SetSequenceShard(int64_t shard, int64_t shards) {
  MOERL_CHECK(shards >= 1 && shard >= 0 && shard < shards) << "sequence shard " << shard << " of " << shards;
  sequence_shard_ = shard;
  sequence_shards_ = shards;
}

void Qwen3Model::SetExpertPath(ExpertPath path) {
  for (auto& layer : layers_) {
    if (layer->moe) layer->moe->set_expert_path(path);
  }
}

void Qwen3Model::SetDispatcher(const std::shared_ptr<TokenDispatcher>& dispatcher) {
  for (auto& layer : layers_) {
    if (layer->moe) layer->moe->set_dispatcher(dispatcher);
  }
}

}  // namespace moerl
