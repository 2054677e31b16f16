#include "rollout/server/forwarder.h"

#include <ATen/ops/cumsum.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/multinomial.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "rollout/engine/decode_forward.h"

namespace moerl {

Forwarder::Forwarder(Qwen3Model& model, KvCache* cache) : model_(model), cache_(cache) {
  if (DecodeForward::Supported(model)) decoder_ = std::make_unique<DecodeForward>(model, cache);
}

Forwarder::~Forwarder() = default;

void Forwarder::Step(const std::vector<int64_t>& tokens, const std::vector<int64_t>& slots,
                     std::vector<int32_t>* routes) {
  rows_ = static_cast<int64_t>(tokens.size());
  if (decoder_) {
    hidden_ = &decoder_->Step(tokens, slots);
    *routes = decoder_->routes();
    return;
  }
  // The training forward: one segment per run of rows of the same slot.
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  ModelInput in;
  std::vector<int64_t> positions;
  cache_->slot_of_segment.clear();
  for (int64_t i = 0; i < rows_; ++i) {
    if (i == 0 || slots[i] != slots[i - 1]) {
      cache_->slot_of_segment.push_back(slots[i]);
      in.layout.seq_lens.push_back(0);
    }
    positions.push_back(cache_->lengths[slots[i]] + in.layout.seq_lens.back()++);
  }
  in.tokens_t = at::tensor(tokens, i64);
  in.positions_t = at::tensor(positions, i64);
  in.cache = cache_;
  ModelOutput out = model_.Forward(in);
  hidden_td_ = out.hidden_td;
  const int64_t k = model_.config().num_experts_per_tok, m = static_cast<int64_t>(out.topk_ids_tk.size());
  routes->assign(rows_ * m * k, 0);
  for (int64_t l = 0; l < m; ++l) {
    at::Tensor ids = out.topk_ids_tk[l].to(at::kLong).contiguous();  // [rows, k]
    const int64_t* p = ids.data_ptr<int64_t>();
    for (int64_t t = 0; t < rows_; ++t) {
      for (int64_t j = 0; j < k; ++j) (*routes)[(t * m + l) * k + j] = static_cast<int32_t>(p[t * k + j]);
    }
  }
}

void Forwarder::Logits(const std::vector<int64_t>& rows, float* logits_nv) {
  const int64_t n = static_cast<int64_t>(rows.size());
  if (decoder_) {
    const int64_t d = model_.config().hidden_size;
    gathered_.resize(n * d);
    for (int64_t i = 0; i < n; ++i) {
      std::copy(hidden_->begin() + rows[i] * d, hidden_->begin() + (rows[i] + 1) * d, gathered_.begin() + i * d);
    }
    decoder_->Logits(gathered_.data(), n, logits_nv);
    return;
  }
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  at::Tensor h_nd = hidden_td_.index_select(0, at::tensor(rows, i64));
  at::Tensor out = at::from_blob(logits_nv, {n, model_.config().vocab_size}, at::TensorOptions().dtype(at::kFloat));
  out.copy_(at::linear(h_nd, model_.lm_head_weight()));
}

int64_t SampleRow(const at::Tensor& logits_1v, const SamplingParams& c, at::Generator& gen) {
  const int64_t top_k = c.top_k < 0 ? 0 : c.top_k;
  at::Tensor z_bv = logits_1v.to(at::kFloat) / c.temperature;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (top_k > 0 && top_k < z_bv.size(1)) {
    at::Tensor kth_b1 = std::get<0>(z_bv.topk(top_k, -1)).narrow(1, top_k - 1, 1);
    z_bv = z_bv.masked_fill(z_bv < kth_b1, neg_inf);
  }
  if (c.top_p < 1.0) {
    auto [sorted_bv, order_bv] = at::sort(z_bv, -1, /*descending=*/true);
    at::Tensor probs_bv = sorted_bv.softmax(-1);
    at::Tensor drop_bv = (at::cumsum(probs_bv, -1) - probs_bv) >= c.top_p;
    sorted_bv = sorted_bv.masked_fill(drop_bv, neg_inf);
    z_bv = at::full_like(z_bv, neg_inf).scatter(1, order_bv, sorted_bv);
  }
  return at::multinomial(z_bv.softmax(-1), 1, /*replacement=*/false, gen).item<int64_t>();
}

float TokenLogProb(const float* logits, int64_t vocab, int64_t token, double temperature) {
  const float t = static_cast<float>(temperature);
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t v = 0; v < vocab; ++v) top = std::max(top, temperature == 1.0 ? logits[v] : logits[v] / t);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp((temperature == 1.0 ? logits[v] : logits[v] / t) - top);
  const float lse = top + static_cast<float>(std::log(sum));
  const float z = temperature == 1.0 ? logits[token] : logits[token] / t;
  return z - lse;
}
}  // namespace moerl
