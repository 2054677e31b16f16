#include "rollout/engine/decode_forward.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/logging.h"
#include "rollout/engine/small_gemm.h"
#include "trainer/model/primitives.h"

namespace moerl {
namespace {

const float* F32(const at::Tensor& t) { return t.data_ptr<float>(); }

bool Fp32Contiguous(const at::Tensor& t) {
  return t.defined() && t.scalar_type() == at::kFloat && t.device().is_cpu() && t.is_contiguous();
}

at::Tensor Parameter(const torch::nn::Module& m, const std::string& name) {
  const at::Tensor* p = m.named_parameters(/*recurse=*/true).find(name);
  return p == nullptr ? at::Tensor() : *p;
}

// y = w * (x / sqrt(mean(x^2) + eps)) over n values (the RmsNorm formula).
void RmsNormRow(const float* x, const float* w, int64_t n, double eps, float* y) {
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) sq += static_cast<double>(x[i]) * x[i];
  const float variance = static_cast<float>(sq / static_cast<double>(n));
  const float inv = 1.0f / std::sqrt(variance + static_cast<float>(eps));
  for (int64_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

// x' = x cos + rotate_half(x) sin, rotate_half(x) = [-x2, x1], in place.
void RopeRow(float* x, const float* cos_d, const float* sin_d, int64_t d) {
  const int64_t half = d / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * cos_d[i] + (-x2) * sin_d[i];
    x[i + half] = x2 * cos_d[i + half] + x1 * sin_d[i + half];
  }
}

float Silu(float x) { return x / (1.0f + std::exp(-x)); }

// y_mn = x_mk w_nk^T: SmallGemmNT for the few rows of a decode step (memory
// bound), MKL for prefill-sized row counts (compute bound).
void Gemm(const float* x_mk, int64_t m, int64_t k, const float* w_nk, int64_t n, float* y_mn) {
  if (m <= DecodeForward::kSmallGemmMaxRows) {
    SmallGemmNT(x_mk, m, k, w_nk, n, y_mn);
    return;
  }
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor y = at::from_blob(y_mn, {m, n}, f32);
  at::mm_out(y, at::from_blob(const_cast<float*>(x_mk), {m, k}, f32),
             at::from_blob(const_cast<float*>(w_nk), {n, k}, f32).t());
}

}  // namespace

bool DecodeForward::Supported(const Qwen3Model& model) {
  const ModelConfig& c = model.config();
  if (model.dtype() != at::kFloat || !Fp32Contiguous(model.lm_head_weight())) return false;
  if (!Fp32Contiguous(Parameter(model, "model.embed_tokens.weight")) ||
      !Fp32Contiguous(Parameter(model, "model.norm.weight"))) {
    return false;
  }
  for (const auto& layer : model.layers()) {
    for (const auto& p : layer->parameters()) {
      if (!Fp32Contiguous(p)) return false;
    }
    // Sharded experts (expert parallelism) go through the model's dispatcher.
    if (layer->moe && layer->moe->experts->gate_up_proj.size(0) != c.num_experts) return false;
  }
  return c.head_dim % 2 == 0;
}

DecodeForward::DecodeForward(Qwen3Model& model, KvCache* cache) : config_(model.config()), cache_(cache) {
  MOERL_CHECK(Supported(model));
  embed_vd_ = Parameter(model, "model.embed_tokens.weight");
  final_norm_d_ = Parameter(model, "model.norm.weight");
  lm_head_vd_ = model.lm_head_weight();
  for (const auto& layer : model.layers()) {
    LayerWeights w;
    w.input_norm = F32(layer->input_layernorm->weight);
    w.post_norm = F32(layer->post_attention_layernorm->weight);
    w.q = F32(layer->self_attn->q_proj->weight);
    w.k = F32(layer->self_attn->k_proj->weight);
    w.v = F32(layer->self_attn->v_proj->weight);
    w.o = F32(layer->self_attn->o_proj->weight);
    w.q_norm = F32(layer->self_attn->q_norm->weight);
    w.k_norm = F32(layer->self_attn->k_norm->weight);
    if (layer->moe) {
      w.router = F32(layer->moe->gate->weight);
      w.gate_up = F32(layer->moe->experts->gate_up_proj);
      w.down = F32(layer->moe->experts->down_proj);
      w.ffn = config_.moe_intermediate_size;
    } else {
      w.mlp_gate = F32(layer->mlp->gate_proj->weight);
      w.mlp_up = F32(layer->mlp->up_proj->weight);
      w.mlp_down = F32(layer->mlp->down_proj->weight);
      w.ffn = config_.intermediate_size;
    }
    if (layer->moe) ++moe_layers_;
    layers_.push_back(w);
  }
  // The training forward's own tables, so positions rotate identically.
  RopeTables rope = MakeRopeTables(at::arange(cache_->max_len(), at::TensorOptions().dtype(at::kLong)),
                                   config_.head_dim, config_.rope_theta, at::kFloat);
  cos_pd_ = rope.cos_td.contiguous();
  sin_pd_ = rope.sin_td.contiguous();
}

const std::vector<float>& DecodeForward::Step(const std::vector<int64_t>& tokens,
                                              const std::vector<int64_t>& slots) {
  const int64_t rows = static_cast<int64_t>(tokens.size()), d = config_.hidden_size;
  MOERL_CHECK(static_cast<int64_t>(slots.size()) == rows);
  // Row b sits after the cached past and the earlier rows of its slot.
  positions_.resize(rows);
  std::vector<int64_t> next = cache_->lengths;
  const int64_t vocab = embed_vd_.size(0), num_slots = static_cast<int64_t>(next.size());
  for (int64_t b = 0; b < rows; ++b) {
    MOERL_CHECK(slots[b] >= 0 && slots[b] < num_slots);
    MOERL_CHECK(tokens[b] >= 0 && tokens[b] < vocab);
    positions_[b] = next[slots[b]]++;
    MOERL_CHECK(positions_[b] < cache_->max_len());
  }
  h_bd_.resize(rows * d);
  x_bd_.resize(rows * d);
  y_bd_.resize(rows * d);
  routes_bmk_.resize(rows * moe_layers_ * config_.num_experts_per_tok);
  int64_t moe_index = 0;
  const float* embed = F32(embed_vd_);
  for (int64_t b = 0; b < rows; ++b) std::memcpy(&h_bd_[b * d], embed + tokens[b] * d, d * sizeof(float));
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerWeights& w = layers_[l];
    for (int64_t b = 0; b < rows; ++b) RmsNormRow(&h_bd_[b * d], w.input_norm, d, config_.rms_norm_eps, &x_bd_[b * d]);
    Attention(static_cast<int64_t>(l), rows, slots);  // y_bd_ = attention output after o_proj
    for (int64_t i = 0; i < rows * d; ++i) h_bd_[i] += y_bd_[i];
    for (int64_t b = 0; b < rows; ++b) RmsNormRow(&h_bd_[b * d], w.post_norm, d, config_.rms_norm_eps, &x_bd_[b * d]);
    if (w.router != nullptr) {
      Moe(w, rows, moe_index++);
    } else {
      DenseMlp(w, rows);
    }
    for (int64_t i = 0; i < rows * d; ++i) h_bd_[i] += y_bd_[i];
  }
  for (int64_t s : slots) ++cache_->lengths[s];
  out_bd_.resize(rows * d);
  for (int64_t b = 0; b < rows; ++b) RmsNormRow(&h_bd_[b * d], F32(final_norm_d_), d, config_.rms_norm_eps, &out_bd_[b * d]);
  return out_bd_;
}

void DecodeForward::Logits(const float* hidden_bd, int64_t rows, float* logits_bv) const {
  Gemm(hidden_bd, rows, config_.hidden_size, F32(lm_head_vd_), config_.vocab_size, logits_bv);
}

void DecodeForward::Attention(int64_t layer, int64_t rows, const std::vector<int64_t>& slots) {
  const LayerWeights& w = layers_[layer];
  const int64_t d = config_.hidden_size, heads = config_.num_attention_heads;
  const int64_t kv = config_.num_key_value_heads, hd = config_.head_dim, rep = heads / kv;
  q_.resize(rows * heads * hd);
  k_.resize(rows * kv * hd);
  v_.resize(rows * kv * hd);
  attn_.resize(rows * heads * hd);
  Gemm(x_bd_.data(), rows, d, w.q, heads * hd, q_.data());  // [b, h*hd]
  Gemm(x_bd_.data(), rows, d, w.k, kv * hd, k_.data());     // [b, k*hd]
  Gemm(x_bd_.data(), rows, d, w.v, kv * hd, v_.data());
  const int64_t max_len = cache_->max_len();
  float* k_cache = cache_->k_skmd[layer].data_ptr<float>();  // [slots, k, max_len, hd]
  float* v_cache = cache_->v_skmd[layer].data_ptr<float>();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  std::vector<float> tmp(hd);
  for (int64_t b = 0; b < rows; ++b) {
    // Earlier rows of this slot (a prefill) have written their keys and
    // values already, so attending over [0, pos] is causal.
    const int64_t slot = slots[b], pos = positions_[b];
    const float* cos_d = F32(cos_pd_) + pos * hd;
    const float* sin_d = F32(sin_pd_) + pos * hd;
    for (int64_t j = 0; j < heads; ++j) {
      float* q = &q_[(b * heads + j) * hd];
      std::memcpy(tmp.data(), q, hd * sizeof(float));
      RmsNormRow(tmp.data(), w.q_norm, hd, config_.rms_norm_eps, q);
      RopeRow(q, cos_d, sin_d, hd);
    }
    for (int64_t j = 0; j < kv; ++j) {
      float* k = &k_[(b * kv + j) * hd];
      std::memcpy(tmp.data(), k, hd * sizeof(float));
      RmsNormRow(tmp.data(), w.k_norm, hd, config_.rms_norm_eps, k);
      RopeRow(k, cos_d, sin_d, hd);
      const int64_t at = ((slot * kv + j) * max_len + pos) * hd;
      std::memcpy(k_cache + at, k, hd * sizeof(float));
      std::memcpy(v_cache + at, &v_[(b * kv + j) * hd], hd * sizeof(float));
    }
    // Query heads [g * rep, (g + 1) * rep) read KV head g over positions [0, pos].
    const int64_t seen = pos + 1;
    scores_.resize(rep * seen);
    for (int64_t g = 0; g < kv; ++g) {
      const float* kc = k_cache + (slot * kv + g) * max_len * hd;  // [seen, hd]
      const float* vc = v_cache + (slot * kv + g) * max_len * hd;
      SmallGemmNT(&q_[(b * heads + g * rep) * hd], rep, hd, kc, seen, scores_.data());  // [rep, seen]
      for (int64_t r = 0; r < rep; ++r) {
        float* score = &scores_[r * seen];
        float top = -INFINITY;
        for (int64_t t = 0; t < seen; ++t) top = std::max(top, score[t] *= scale);
        float sum = 0;
        for (int64_t t = 0; t < seen; ++t) sum += (score[t] = std::exp(score[t] - top));
        float* out = &attn_[(b * heads + g * rep + r) * hd];
        std::fill(out, out + hd, 0.0f);
        for (int64_t t = 0; t < seen; ++t) {
          const float p = score[t] / sum;
          const float* v = vc + t * hd;
          for (int64_t i = 0; i < hd; ++i) out[i] += p * v[i];
        }
      }
    }
  }
  Gemm(attn_.data(), rows, heads * hd, w.o, d, y_bd_.data());  // [b, h*hd] -> [b, d]
}

void DecodeForward::Moe(const LayerWeights& w, int64_t rows, int64_t moe_index) {
  const int64_t d = config_.hidden_size, e_count = config_.num_experts, top_k = config_.num_experts_per_tok;
  const int64_t f = w.ffn;
  router_be_.resize(rows * e_count);
  Gemm(x_bd_.data(), rows, d, w.router, e_count, router_be_.data());
  // Route: softmax over all experts, top-k by probability, renormalise.
  std::vector<std::vector<std::pair<int64_t, float>>> hits(e_count);  // expert -> (row, weight)
  std::vector<float> probs(e_count);
  std::vector<int64_t> order(e_count);
  for (int64_t b = 0; b < rows; ++b) {
    const float* z = &router_be_[b * e_count];
    const float top = *std::max_element(z, z + e_count);
    float sum = 0;
    for (int64_t e = 0; e < e_count; ++e) sum += (probs[e] = std::exp(z[e] - top));
    for (int64_t e = 0; e < e_count; ++e) probs[e] /= sum;
    for (int64_t e = 0; e < e_count; ++e) order[e] = e;
    // Descending probability, lower id first on ties.
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int64_t a, int64_t c) {
      return probs[a] > probs[c] || (probs[a] == probs[c] && a < c);
    });
    int32_t* route = &routes_bmk_[(b * moe_layers_ + moe_index) * top_k];
    for (int64_t j = 0; j < top_k; ++j) route[j] = static_cast<int32_t>(order[j]);
    float kept = 0;
    for (int64_t j = 0; j < top_k; ++j) kept += probs[order[j]];
    for (int64_t j = 0; j < top_k; ++j) {
      const float weight = config_.norm_topk_prob ? probs[order[j]] / kept : probs[order[j]];
      hits[order[j]].emplace_back(b, weight);
    }
  }
  // Experts in ascending id, each over its rows; weighted sum into y.
  std::fill(y_bd_.begin(), y_bd_.begin() + rows * d, 0.0f);
  for (int64_t e = 0; e < e_count; ++e) {
    const int64_t m = static_cast<int64_t>(hits[e].size());
    if (m == 0) continue;
    rows_md_.resize(m * d);
    gu_mf_.resize(m * 2 * f);
    act_mf_.resize(m * f);
    expert_out_md_.resize(m * d);
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(&rows_md_[i * d], &x_bd_[hits[e][i].first * d], d * sizeof(float));
    }
    Gemm(rows_md_.data(), m, d, w.gate_up + e * 2 * f * d, 2 * f, gu_mf_.data());  // [m, 2f]
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t c = 0; c < f; ++c) act_mf_[i * f + c] = Silu(gu_mf_[i * 2 * f + c]) * gu_mf_[i * 2 * f + f + c];
    }
    Gemm(act_mf_.data(), m, f, w.down + e * d * f, d, expert_out_md_.data());  // [m, d]
    for (int64_t i = 0; i < m; ++i) {
      float* y = &y_bd_[hits[e][i].first * d];
      const float weight = hits[e][i].second;
      for (int64_t c = 0; c < d; ++c) y[c] += expert_out_md_[i * d + c] * weight;
    }
  }
}

void DecodeForward::DenseMlp(const LayerWeights& w, int64_t rows) {
  const int64_t d = config_.hidden_size, f = w.ffn;
  gu_mf_.resize(rows * 2 * f);
  act_mf_.resize(rows * f);
  Gemm(x_bd_.data(), rows, d, w.mlp_gate, f, gu_mf_.data());           // gate [b, f]
  Gemm(x_bd_.data(), rows, d, w.mlp_up, f, gu_mf_.data() + rows * f);  // up [b, f]
  for (int64_t i = 0; i < rows * f; ++i) act_mf_[i] = Silu(gu_mf_[i]) * gu_mf_[rows * f + i];
  Gemm(act_mf_.data(), rows, f, w.mlp_down, d, y_bd_.data());
}

}  // namespace moerl
