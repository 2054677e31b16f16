#include "trainer/model/router_losses.h"

#include <ATen/ops/bincount.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include "common/logging.h"

namespace moerl {

RouterPartials RouterLossPartials(const std::vector<at::Tensor>& logits_te_per_layer, int64_t top_k,
                                  RouterStatsReducer* reducer) {
  MOERL_CHECK(!logits_te_per_layer.empty());
  const int64_t num_experts = logits_te_per_layer[0].size(1);
  const int64_t tokens = logits_te_per_layer[0].size(0);
  const auto f32 = logits_te_per_layer[0].options().dtype(at::kFloat);
  at::Tensor counts_e = at::zeros({num_experts}, f32);
  at::Tensor prob_sum_e = at::zeros({num_experts}, f32);
  at::Tensor lse_sq_sum;
  int64_t rows = 0;
  for (const at::Tensor& logits_te : logits_te_per_layer) {
    MOERL_CHECK(logits_te.size(0) == tokens);
    at::Tensor probs_te = logits_te.softmax(-1);
    at::Tensor ids_tk = std::get<1>(probs_te.topk(top_k, -1));
    counts_e = counts_e + at::bincount(ids_tk.reshape({-1}), {}, num_experts).to(at::kFloat);
    prob_sum_e = prob_sum_e + probs_te.to(at::kFloat).sum(0);
    at::Tensor z = at::logsumexp(logits_te.to(at::kFloat), {-1}).pow(2).sum();
    lse_sq_sum = lse_sq_sum.defined() ? lse_sq_sum + z : z;
    rows += tokens;
  }
  // [E + 2]: counts, rows, tokens; summed over the batch's ranks.
  at::Tensor stats = at::cat({counts_e.to(at::kDouble).cpu(),
                              at::tensor({static_cast<double>(rows), static_cast<double>(tokens)},
                                         at::TensorOptions().dtype(at::kDouble))});
  if (reducer != nullptr) stats = reducer->Sum(stats);
  const double t = stats[num_experts + 1].item<double>();
  RouterPartials out;
  out.prob_sum_e = prob_sum_e;
  out.stats = stats;
  // Empty ranks still take part in the reduction; their share is zero.
  out.z = t > 0 ? lse_sq_sum / t : lse_sq_sum * 0.0;
  return out;
}

at::Tensor RouterAuxShare(const at::Tensor& prob_sum_e, const at::Tensor& stats) {
  const int64_t num_experts = prob_sum_e.size(0);
  MOERL_CHECK(stats.numel() == num_experts + 2);
  const double n = stats[num_experts].item<double>();
  at::Tensor batch_counts_e = stats.narrow(0, 0, num_experts).to(prob_sum_e.device()).to(at::kFloat);
  return ((batch_counts_e / n) * (prob_sum_e / n)).sum() * static_cast<double>(num_experts);
}

RouterLosses BatchRouterLosses(const std::vector<at::Tensor>& logits_te_per_layer, int64_t top_k,
                               RouterStatsReducer* reducer) {
  RouterPartials partials = RouterLossPartials(logits_te_per_layer, top_k, reducer);
  RouterLosses out;
  out.aux = RouterAuxShare(partials.prob_sum_e, partials.stats);
  out.z = partials.z;
  return out;
}

}  // namespace moerl
