// Expert parallelism's TokenDispatcher (Megatron's alltoall dispatcher,
// dropless, ETP = 1): each EP rank holds experts [r * E/P, (r + 1) * E/P) and
// receives, from every rank of its EP group, the token copies routed to them.
//
// Dispatch: group this rank's T*k copies by expert like the local dispatcher
// (stable, so expert order then token order); all-to-all the per-expert
// counts ([E] out, [P, E/P] in); all-to-all the rows (send_rows[j] = copies
// for rank j's experts); reorder the received rows from [source][expert] to
// [expert][source] so each local expert's rows are contiguous.
// Combine: undo that reorder, the reverse all-to-all, then the local
// dispatcher's weighted sum on the rank that owns the tokens, in the same
// row order as one process would use. Weights never travel.
// Backward of each all-to-all is the all-to-all with the splits swapped
// (a custom autograd function); no atomics, fixed orders: deterministic.
//
//   auto dispatcher = std::make_shared<AllToAllTokenDispatcher>(state.shared_group(RankGroupKind::kExpert));
//   model.SetDispatcher(dispatcher);   // ParallelizeQwen3 does this with the expert shards
//
// DispatchedTokens from this dispatcher: tokens_nd / tokens_per_expert are
// the received rows for the local experts; weights_n and source_token_n are
// undefined (this rank's own copies live in `state` for Combine).
//
// Every rank of the EP group must run each MoE layer's Dispatch, Combine and
// their backward in the same order (the same model, the same number of
// micro-batches), also with no tokens. The dispatcher and its group must
// outlive backward. Thread-compatible.
#ifndef MOERL_TRAINER_PARALLEL_ALLTOALL_DISPATCHER_H_
#define MOERL_TRAINER_PARALLEL_ALLTOALL_DISPATCHER_H_

#include <memory>

#include "trainer/model/moe.h"
#include "trainer/parallel/process_groups.h"

namespace moerl {

class AllToAllTokenDispatcher : public TokenDispatcher {
 public:
  explicit AllToAllTokenDispatcher(std::shared_ptr<const ProcessGroup> ep_group);

  int64_t FirstLocalExpert(int64_t num_experts) const override;
  int64_t NumLocalExperts(int64_t num_experts) const override;
  DispatchedTokens Dispatch(const at::Tensor& x_td, const Routing& routing, int64_t num_experts) override;
  at::Tensor Combine(const at::Tensor& expert_out_nd, const DispatchedTokens& dispatched) override;

 private:
  std::shared_ptr<const ProcessGroup> ep_;
  LocalTokenDispatcher local_;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_ALLTOALL_DISPATCHER_H_
