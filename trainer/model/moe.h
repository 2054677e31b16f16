// The MoE layer's four steps, Route -> Dispatch -> Experts -> Combine, as
// functions and one seam (TokenDispatcher) that expert parallelism replaces.
//
// Route (Qwen3 / HF `Qwen3MoeTopKRouter`):
//   logits_te = x W_g^T (model dtype); probs = softmax_fp32(logits) over all E;
//   (w, ids) = topk(probs, k); if norm_topk_prob: w /= sum(w); w -> model dtype.
// Experts (SwiGLU, weights fused like transformers v5): for expert e,
//   y = down_e( silu(x G_e^T) * (x U_e^T) ), gate_up_e = [G_e; U_e]  [2F, D].
// Combine: y_t = sum_j w_tj * Expert_{ids_tj}(x_t) (the local dispatcher does
// it in one pass each way for fp32 on CPU, a custom autograd function).
// Aux loss (HF `load_balancing_loss_func`, over all MoE layers' logits):
//   aux = E * sum_e (count_e / N) * (sum_t softmax(logits)_te / N), N = rows.
// z-loss (ST-MoE): mean_t logsumexp(logits_t)^2.
//
// Shape letters: t tokens, d hidden, e experts, k top-k, n token copies
// (t * k), f expert FFN width.
//
//   Routing r = Route(x_td, gate_ed, /*top_k=*/2, /*norm_topk_prob=*/true);
//   LocalTokenDispatcher dispatcher;
//   DispatchedTokens d = dispatcher.Dispatch(x_td, r, num_experts);
//   at::Tensor out_nd = GroupedExperts(d.tokens_nd, d.tokens_per_expert, gate_up_efd, down_edf);
//   at::Tensor y_td = dispatcher.Combine(out_nd, d);
//   // the slow, obviously correct reference for the same thing:
//   at::Tensor ref_td = ExpertLoopReference(x_td, r, gate_up_efd, down_edf);
//
// Threading: thread-compatible; dispatchers hold no per-call state.
#ifndef MOERL_TRAINER_MODEL_MOE_H_
#define MOERL_TRAINER_MODEL_MOE_H_

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace moerl {

struct Routing {
  at::Tensor logits_te;       // router logits, model dtype (for aux / z losses)
  at::Tensor topk_ids_tk;     // int64, sorted by descending prob
  // The router's own top-k: topk_ids_tk unless replay forced other experts
  // (the routing-mismatch statistics compare it with the inference engine's).
  at::Tensor router_topk_ids_tk;
  at::Tensor topk_weights_tk; // model dtype, renormalised if norm_topk_prob
};

// Router replay: forced_ids_tk (int64 [T, k], optional) names the experts
// of each row whose first entry is >= 0; those rows use them with their
// router probabilities as weights (renormalised like the top-k, so the
// router still gets gradients), rows of -1 route normally.
Routing Route(const at::Tensor& x_td, const at::Tensor& gate_ed, int64_t top_k, bool norm_topk_prob,
              const at::Tensor& forced_ids_tk = at::Tensor());

// What a dispatcher carries from Dispatch to Combine beyond the fields of
// DispatchedTokens (the expert-parallel one keeps its split sizes here).
struct DispatchState {
  virtual ~DispatchState() = default;
};

// Token copies grouped by expert (ascending), stable within an expert.
struct DispatchedTokens {
  at::Tensor tokens_nd;                  // rows for this rank's experts
  at::Tensor weights_n;                  // routing weight of each row (local dispatcher)
  at::Tensor source_token_n;             // int64: row -> token index in x_td (local dispatcher)
  std::vector<int64_t> tokens_per_expert;  // host counts, one per local expert
  int64_t num_tokens = 0;                // T of the input (for Combine)
  std::shared_ptr<const DispatchState> state;  // null for the local dispatcher
};

// The seam between routing and the experts. The local dispatcher moves no
// data between ranks; the expert-parallel all-to-all one (trainer/parallel/)
// implements the same contract over a process group.
class TokenDispatcher {
 public:
  virtual ~TokenDispatcher() = default;
  // Which experts this dispatcher's Experts step holds: [first, first + count).
  virtual int64_t FirstLocalExpert(int64_t num_experts) const = 0;
  virtual int64_t NumLocalExperts(int64_t num_experts) const = 0;
  virtual DispatchedTokens Dispatch(const at::Tensor& x_td, const Routing& routing,
                                    int64_t num_experts) = 0;
  // Weights each expert output row and sums the copies back into [T, D].
  virtual at::Tensor Combine(const at::Tensor& expert_out_nd, const DispatchedTokens& dispatched) = 0;
};

class LocalTokenDispatcher : public TokenDispatcher {
 public:
  int64_t FirstLocalExpert(int64_t) const override { return 0; }
  int64_t NumLocalExperts(int64_t num_experts) const override { return num_experts; }
  DispatchedTokens Dispatch(const at::Tensor& x_td, const Routing& routing, int64_t num_experts) override;
  at::Tensor Combine(const at::Tensor& expert_out_nd, const DispatchedTokens& dispatched) override;
};

// Fast path: rows already grouped by expert; one fused gate/up GEMM and one
// down GEMM per expert on contiguous slices, with a hand-written backward
// (GroupedSwiGlu in grouped_swiglu.h).
at::Tensor GroupedExperts(const at::Tensor& tokens_nd, const std::vector<int64_t>& tokens_per_expert,
                          const at::Tensor& gate_up_efd, const at::Tensor& down_edf);

// Reference path: for each expert, find its tokens, run it, add weighted.
at::Tensor ExpertLoopReference(const at::Tensor& x_td, const Routing& routing,
                               const at::Tensor& gate_up_efd, const at::Tensor& down_edf);

// Aux load-balancing loss over the router logits of every MoE layer.
at::Tensor LoadBalancingLoss(const std::vector<at::Tensor>& logits_te_per_layer, int64_t top_k);

// Router z-loss summed over layers: sum_l mean_t logsumexp(logits_l[t])^2.
at::Tensor RouterZLoss(const std::vector<at::Tensor>& logits_te_per_layer);

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_MOE_H_
