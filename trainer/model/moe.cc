#include "trainer/model/moe.h"

#include <ATen/ops/argsort.h>
#include <ATen/ops/bincount.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/custom_function.h>

#include "common/logging.h"
#include "trainer/model/grouped_swiglu.h"
#include "trainer/model/primitives.h"

namespace moerl {

Routing Route(const at::Tensor& x_td, const at::Tensor& gate_ed, int64_t top_k, bool norm_topk_prob,
              const at::Tensor& forced_ids_tk) {
  Routing r;
  r.logits_te = at::linear(x_td, gate_ed);
  at::Tensor probs_te = r.logits_te.softmax(-1, at::kFloat);
  auto [values_tk, ids_tk] = probs_te.topk(top_k, -1);
  r.router_topk_ids_tk = ids_tk;
  if (forced_ids_tk.defined()) {
    at::Tensor forced_t1 = forced_ids_tk.select(1, 0).ge(0).unsqueeze(1);  // [T, 1]
    ids_tk = at::where(forced_t1, forced_ids_tk.clamp_min(0), ids_tk);
    values_tk = probs_te.gather(1, ids_tk);
  }
  if (norm_topk_prob) values_tk = values_tk / values_tk.sum({-1}, /*keepdim=*/true);
  r.topk_ids_tk = ids_tk;
  r.topk_weights_tk = values_tk.to(r.logits_te.scalar_type());
  return r;
}

DispatchedTokens LocalTokenDispatcher::Dispatch(const at::Tensor& x_td, const Routing& routing,
                                                int64_t num_experts) {
  const int64_t top_k = routing.topk_ids_tk.size(1);
  at::Tensor ids_n = routing.topk_ids_tk.reshape({-1});               // [T*k], token-major
  at::Tensor order_n = at::argsort(ids_n, /*stable=*/true, 0, false);  // group by expert
  DispatchedTokens d;
  d.num_tokens = x_td.size(0);
  d.source_token_n = order_n.div(top_k, "floor");
  d.tokens_nd = x_td.index_select(0, d.source_token_n);
  d.weights_n = routing.topk_weights_tk.reshape({-1}).index_select(0, order_n);
  // Read on the host: data_ptr of a CUDA tensor is a device address.
  at::Tensor counts_e = at::bincount(ids_n, {}, num_experts).to(at::kCPU);
  const int64_t* c = counts_e.data_ptr<int64_t>();
  d.tokens_per_expert.assign(c, c + num_experts);
  return d;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y[src[n]] += w[n] * out[n] over all rows n in order (the same sequential
// accumulation as index_add), fp32 on CPU, one pass each way:
//   d_out[n] = w[n] * dy[src[n]],  d_w[n] = <dy[src[n]], out[n]>.
class WeightedCombineFunction : public torch::autograd::Function<WeightedCombineFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& out_nd, const at::Tensor& weights_n,
                            const at::Tensor& source_n, int64_t num_tokens) {
    at::Tensor out = out_nd.contiguous(), w = weights_n.contiguous(), src = source_n.contiguous();
    const int64_t rows = out.size(0), dim = out.size(1);
    MOERL_CHECK(w.numel() == rows && src.numel() == rows && src.scalar_type() == at::kLong);
    at::Tensor y_td = at::zeros({num_tokens, dim}, out.options());
    const float* o = out.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    const int64_t* sp = src.data_ptr<int64_t>();
    float* y = y_td.data_ptr<float>();
    for (int64_t n = 0; n < rows; ++n) {
      MOERL_CHECK(sp[n] >= 0 && sp[n] < num_tokens);
      float* yr = y + sp[n] * dim;
      const float* orow = o + n * dim;
      const float wn = wp[n];
      for (int64_t j = 0; j < dim; ++j) yr[j] += wn * orow[j];
    }
    ctx->save_for_backward({out, w, src});
    return y_td;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& out = saved[0];
    const at::Tensor& w = saved[1];
    const at::Tensor& src = saved[2];
    at::Tensor dy_td = grads[0].contiguous();
    const int64_t rows = out.size(0), dim = out.size(1);
    at::Tensor d_out_nd = at::empty_like(out);
    at::Tensor d_w_n = at::empty_like(w);
    const float* o = out.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    const int64_t* sp = src.data_ptr<int64_t>();
    const float* dy = dy_td.data_ptr<float>();
    float* dout = d_out_nd.data_ptr<float>();
    float* dw = d_w_n.data_ptr<float>();
    for (int64_t n = 0; n < rows; ++n) {
      const float* g = dy + sp[n] * dim;
      const float* orow = o + n * dim;
      float* drow = dout + n * dim;
      const float wn = wp[n];
      float acc[4] = {0, 0, 0, 0};  // four chains: the sum is latency-bound otherwise
      int64_t j = 0;
      for (; j + 4 <= dim; j += 4) {
        for (int u = 0; u < 4; ++u) {
          drow[j + u] = wn * g[j + u];
          acc[u] += g[j + u] * orow[j + u];
        }
      }
      for (; j < dim; ++j) {
        drow[j] = wn * g[j];
        acc[0] += g[j] * orow[j];
      }
      dw[n] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
    return {d_out_nd, d_w_n, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor LocalTokenDispatcher::Combine(const at::Tensor& expert_out_nd, const DispatchedTokens& d) {
  if (expert_out_nd.device().is_cpu() && expert_out_nd.scalar_type() == at::kFloat &&
      d.weights_n.scalar_type() == at::kFloat && expert_out_nd.dim() == 2) {
    return WeightedCombineFunction::apply(expert_out_nd, d.weights_n, d.source_token_n, d.num_tokens);
  }
  at::Tensor weighted_nd = expert_out_nd * d.weights_n.unsqueeze(1);
  at::Tensor y_td = at::zeros({d.num_tokens, expert_out_nd.size(1)}, expert_out_nd.options());
  // index_add is sequential on CPU: deterministic accumulation order.
  return y_td.index_add(0, d.source_token_n, weighted_nd);
}

at::Tensor GroupedExperts(const at::Tensor& tokens_nd, const std::vector<int64_t>& tokens_per_expert,
                          const at::Tensor& gate_up_efd, const at::Tensor& down_edf) {
  MOERL_CHECK(static_cast<int64_t>(tokens_per_expert.size()) == gate_up_efd.size(0));
  return GroupedSwiGlu(tokens_nd, tokens_per_expert, gate_up_efd, down_edf);
}

at::Tensor ExpertLoopReference(const at::Tensor& x_td, const Routing& routing,
                               const at::Tensor& gate_up_efd, const at::Tensor& down_edf) {
  at::Tensor y_td = at::zeros_like(x_td);
  const int64_t num_experts = gate_up_efd.size(0);
  for (int64_t e = 0; e < num_experts; ++e) {
    // Positions (token, slot) that chose expert e.
    at::Tensor hit_tk = routing.topk_ids_tk.eq(e);
    at::Tensor where = hit_tk.nonzero();  // [n, 2]: token, slot
    if (where.size(0) == 0) continue;
    at::Tensor token_n = where.select(1, 0);
    at::Tensor slot_n = where.select(1, 1);
    at::Tensor out_nd = SwiGluFused(x_td.index_select(0, token_n), gate_up_efd[e], down_edf[e]);
    const int64_t top_k = routing.topk_weights_tk.size(1);
    at::Tensor w_n = routing.topk_weights_tk.reshape({-1}).index_select(0, token_n * top_k + slot_n);
    y_td = y_td.index_add(0, token_n, out_nd * w_n.unsqueeze(1));
  }
  return y_td;
}

at::Tensor LoadBalancingLoss(const std::vector<at::Tensor>& logits_te_per_layer, int64_t top_k) {
  MOERL_CHECK(!logits_te_per_layer.empty());
  const int64_t num_experts = logits_te_per_layer[0].size(1);
  at::Tensor counts_e = at::zeros({num_experts}, logits_te_per_layer[0].options().dtype(at::kFloat));
  at::Tensor prob_sum_e = counts_e.clone();
  int64_t rows = 0;
  for (const at::Tensor& logits_te : logits_te_per_layer) {
    at::Tensor probs_te = logits_te.softmax(-1);
    at::Tensor ids_tk = std::get<1>(probs_te.topk(top_k, -1));
    counts_e = counts_e + at::bincount(ids_tk.reshape({-1}), {}, num_experts).to(at::kFloat);
    prob_sum_e = prob_sum_e + probs_te.to(at::kFloat).sum(0);
    rows += logits_te.size(0);
  }
  const double n = static_cast<double>(rows);
  return ((counts_e / n) * (prob_sum_e / n)).sum() * static_cast<double>(num_experts);
}

at::Tensor RouterZLoss(const std::vector<at::Tensor>& logits_te_per_layer) {
  MOERL_CHECK(!logits_te_per_layer.empty());
  at::Tensor total;
  for (const at::Tensor& logits_te : logits_te_per_layer) {
    at::Tensor z = at::logsumexp(logits_te.to(at::kFloat), {-1}).pow(2).mean();
    total = total.defined() ? total + z : z;
  }
  return total;
}

}  // namespace moerl
