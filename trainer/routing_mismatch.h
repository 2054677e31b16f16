// Routing mismatch: how often the trainer's routers pick other experts than
// the inference engine did (Trajectory.routed_experts), per completion token
// and MoE layer, and the loss mask that drops the tokens where they disagree
// too much.
//
// For completion token j of a sequence and MoE layer l, with inference's
// experts I (k of them) and the router's own top-k R (PolicyOutput::
// router_topk_ids_tk: its own choice also under router replay), the token
// misses |I \ R| of k slots (order does not matter). A token's mismatch
// fraction is its missed slots over all MoE layers divided by layers * k.
// The rows compared are the ones router replay forces (policy_forward.h).
//
//   RoutingMismatch mismatch(model.config());
//   mismatch.Add(seqs, micro, PolicyForward(model, seqs, micro, options));
//   at::Tensor frac_n = mismatch.TokenFraction(i);  // fp64 [completion tokens]
//   mismatch.Record(dropped_tokens, &stats);        // ppo_actor/routing/...
//
// Shape letters: l MoE layers, n completion tokens, k top-k.
// Thread-compatible.
#ifndef MOERL_TRAINER_ROUTING_MISMATCH_H_
#define MOERL_TRAINER_ROUTING_MISMATCH_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "trainer/micro_batches.h"
#include "trainer/model/config.h"
#include "trainer/policy_forward.h"
#include "trainer/stats_log.h"
#include "trainer/train_batch.h"

namespace moerl {

class RoutingMismatch {
 public:
  explicit RoutingMismatch(const ModelConfig& config);

  // Compares the routes of `out` (the forward of `indices`, in that order)
  // with those of the sequences that carry routed_experts (which must have
  // passed ValidateRoutes). A no-op for a forward without every MoE layer
  // (a pipeline stage).
  void Add(const std::vector<TrainSequence>& seqs, const IndexList& indices, const PolicyOutput& out);

  // Whether sequence `seq` (index into seqs) was compared.
  bool Has(int64_t seq) const;
  // int64 [l, n]: per MoE layer and completion token, inference's experts
  // that the router did not pick (0..k). Needs Has(seq).
  const at::Tensor& Missed(int64_t seq) const;
  // fp64 [n]: Missed(seq) summed over layers, / (l * k).
  at::Tensor TokenFraction(int64_t seq) const;

  // Completion tokens compared so far.
  int64_t Tokens() const;

  // ppo_actor/routing/mismatch_frac/{avg,min,max} over the compared tokens
  // (the avg is the fraction of all slots), ppo_actor/routing/layer<i>/
  // mismatch_frac/{avg,min,max} per MoE layer (i: its decoder-layer index),
  // ppo_actor/routing/n_tokens (compared) and ppo_actor/routing/dropped_tokens
  // (= `dropped`). Nothing when no sequence was compared.
  void Record(int64_t dropped, StatsRecorder* stats) const;

 private:
  std::vector<int64_t> moe_layers_;  // decoder-layer index of each MoE layer
  int64_t top_k_;
  std::vector<at::Tensor> missed_ln_;  // per sequence index; undefined if not compared
};

}  // namespace moerl

#endif  // MOERL_TRAINER_ROUTING_MISMATCH_H_
