// The router losses of one forward, over a batch that may span ranks.
//
// Aux load balancing (HF `load_balancing_loss_func`, all MoE layers' logits
// concatenated, N rows in all, E experts, top-k):
//   aux = E * sum_e (count_e / N) * (P_e / N),  P_e = sum_rows softmax(logits)_e
// z-loss (ST-MoE), per layer l over its T tokens: z = sum_l sum_t lse_lt^2 / T.
//
// When the batch is split over ranks (data or context parallel), count_e, N
// and T are sums over the ranks, which a RouterStatsReducer computes (counts
// carry no gradient). Each rank then returns its share:
//   aux_r = E * sum_e (count_e / N) * (P_e^(r) / N),  z_r = sum_l sum_{t in r} lse^2 / T
// so that sum_r aux_r = aux and sum_r z_r = z over the whole batch, and the
// gradient of each share with respect to this rank's logits is exactly that
// of the whole-batch loss. With no reducer the batch is this rank's rows and
// the values equal LoadBalancingLoss / RouterZLoss (moe.h, the reference).
//
//   RouterLosses l = BatchRouterLosses(logits_te_per_layer, top_k, reducer.get());
//
// Thread-compatible.
#ifndef MOERL_TRAINER_MODEL_ROUTER_LOSSES_H_
#define MOERL_TRAINER_MODEL_ROUTER_LOSSES_H_

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace moerl {

// Sums router statistics over the ranks that share one batch.
class RouterStatsReducer {
 public:
  virtual ~RouterStatsReducer() = default;
  // stats: float64 [E + 2] = per-expert counts, rows N, tokens T of this rank.
  // Returns the sums over the ranks (same shape). Every rank of the batch
  // calls it once per forward, in the same order.
  virtual at::Tensor Sum(const at::Tensor& stats) = 0;
};

struct RouterLosses {
  at::Tensor aux;  // fp32 scalar, this rank's share
  at::Tensor z;    // fp32 scalar, this rank's share
};

// The pieces BatchRouterLosses combines, for a pipeline stage that holds
// only some MoE layers: the aux loss couples every layer through the counts,
// so a stage's share E * sum_e (count_e / N) * (P_e^(stage) / N) needs the
// counts and rows summed over all stages (RouterAuxShare, once the pipeline
// has them). The z-loss is per layer and complete here.
struct RouterPartials {
  at::Tensor prob_sum_e;  // fp32 [E], with the graph
  at::Tensor stats;       // fp64 [E + 2] on the CPU: counts, rows N, tokens T; summed by the reducer
  at::Tensor z;           // fp32 scalar, this rank's share
};
RouterPartials RouterLossPartials(const std::vector<at::Tensor>& logits_te_per_layer, int64_t top_k,
                                  RouterStatsReducer* reducer);
// E * sum_e (stats_e / N) * (prob_sum_e / N) with N = stats[E].
at::Tensor RouterAuxShare(const at::Tensor& prob_sum_e, const at::Tensor& stats);

// reducer may be null (the batch is this rank's).
RouterLosses BatchRouterLosses(const std::vector<at::Tensor>& logits_te_per_layer, int64_t top_k,
                               RouterStatsReducer* reducer);

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_ROUTER_LOSSES_H_
