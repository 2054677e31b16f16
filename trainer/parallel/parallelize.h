// Parallelize a one-device Qwen3Model from outside (torchtitan's way), and
// the gradient step that goes with it.
//
//   auto model = std::make_shared<Qwen3Model>(config);
//   MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state));   // before loading weights
//   MOERL_RETURN_IF_ERROR(LoadHfWeights(dir, model.get()));  // reads only this rank's experts
//   GradientReducer reducer(state);
//   for each step (every rank runs the same number of micro-batch forwards:
//   the router losses and the dispatcher communicate in each one):
//     double n_global = SumOverDataParallel(state, local_tokens);
//     loss_share.backward();   // this rank's share of the global objective
//     MOERL_RETURN_IF_ERROR(reducer.Reduce(*model));
//     double norm = ClipGradNorm(*model, state, max_norm);   // or GlobalGradNorm
//     optimizer.step();
//
// What exists: data parallel (dp; fsdp:dN is data parallel whose trainer
// shards the optimizer state, distributed_optimizer.h), expert parallel with folding (ep over the expert generator,
// edp derived), tensor parallel with sequence parallel (ApplyTensorParallel
// below; etp 1, or etp = tp on the tp ranks), context parallelism
// (context_parallel.h) and pipeline stages (pp; the schedule is Run1F1B),
// also tp > 1 within pp > 1 stages. cp > 1 together with pp > 1 is
// Unimplemented.
//
// ParallelizeQwen3 (per MoE layer): keeps the experts of this EP rank
// (Experts::KeepRange), installs the all-to-all dispatcher over the ep group,
// and installs a router-statistics reducer over tp-dp-cp so that the aux and
// z losses are those of the whole global batch (Megatron's "global_aux_loss";
// its default "aux_loss" is per data-parallel rank: we chose the global one
// because it makes the layouts agree with one process exactly).
//
// The loss convention (what the trainer must divide by): every rank returns
// its share of the global objective, shares summing to it. For a token mean:
//   loss_r = sum_{tokens of rank r} l_t / N_global,  N_global = all-reduced
//   over dp-cp (the ranks with distinct tokens), plus the router losses as the
//   model returns them (already shares). Under cp the model's token scorer
//   gives every cp rank the whole shard's log-probs: count over dp only.
// Reduce then SUMS gradients: dense parameters over dp-cp, expert parameters
// over edp (each expert's gradient already holds the tokens of its whole EP
// group, via the all-to-all backward). The result is the gradient of the
// global objective on every rank, equal to one process on the whole batch.
// A trainer that averages per rank instead (loss_r = mean over rank r's
// tokens) passes scale = 1 / (dp * cp), Megatron's default; note that this
// weights ranks, not tokens, equally.
//
// Thread-compatible; collectives follow process_groups.h's rules (every rank
// calls Reduce and the norms in the same order).
#ifndef MOERL_TRAINER_PARALLEL_PARALLELIZE_H_
#define MOERL_TRAINER_PARALLEL_PARALLELIZE_H_

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/model/model.h"
#include "trainer/parallel/parallel_state.h"

namespace moerl {

struct ParallelizeOptions {
  // Layers per pipeline stage (Megatron's uneven split, e.g. {2, 1} for 3
  // layers on pp=2); empty: num_hidden_layers / pp each.
  std::vector<int64_t> pipeline_stage_layers;
};

// Layers [begin, end) of pipeline stage `stage` of `pp`. InvalidArgument
// naming the sizes when layers % pp != 0 without an explicit split, or when
// the split has the wrong length, an empty stage, or the wrong sum.
absl::StatusOr<std::pair<int64_t, int64_t>> PipelineStageLayers(int64_t num_layers, int pp, int stage,
                                                                const std::vector<int64_t>& split = {});

// Shards `model` for `state` (see above): with pp > 1 the model keeps only
// its stage's layers (Qwen3Model::KeepStage; run it with Run1F1B,
// pipeline_schedule.h); with tp > 1 it applies ApplyTensorParallel. Call
// once, on the freshly built model, before loading weights or building the
// optimizer. With cp > 1 it applies ApplyContextParallel (after tp).
// Unimplemented for etp > 1 other than tp, and cp > 1 with pp > 1;
// InvalidArgument when the layout does not fit the model's config.
absl::Status ParallelizeQwen3(Qwen3Model& model, const ParallelState& state, const ParallelizeOptions& options = {});

// Unimplemented (naming the dimension) for a layout the trainer cannot run
// yet (etp other than tp); callers check it before any rank meets
// another.
absl::Status CheckLayoutImplemented(const ParallelDims& dims);

// Tensor + sequence parallelism (Megatron's, tensor_parallel.h), called by
// ParallelizeQwen3; nothing for tp = 1. Rank r of the tp group keeps query
// heads [r h/tp, (r+1) h/tp) and KV heads [r k/tp, ...) (q/k/v column-, o
// row-parallel), the dense MLP's intermediate rows [r F/tp, ...) (gate/up
// column-, down row-parallel), and vocabulary rows [r V/tp, ...) of the
// embedding and the LM head (WeightModule::KeepSlice: init and HF loading
// give each rank its slice; SaveHfCheckpoint refuses). Sequence parallel is
// always on: the hidden states between blocks, the norms, the MoE router and
// experts see this rank's T/tp token rows (T must be a multiple of tp: pad
// the micro-batch); attention and the dense MLP gather the rows in and
// reduce-scatter their output. With ep the dispatcher exchanges each rank's
// own rows (Megatron's all-to-all dispatcher with sequence parallel). With
// etp = tp the MoE block gathers the rows too, routes all of them, runs each
// expert's intermediate slice [r F/etp, ...) (Experts::KeepIntermediateSlice)
// and reduce-scatters its output.
//
// What changes for the trainer:
//  - ModelOutput.hidden_td (and topk_ids_tk) are this rank's token rows
//    [r T/tp, (r+1) T/tp). For log-probs: x_td = GatherSequence(hidden_sd,
//    tp group), then VocabParallelTokenLogProbs(x_td rows, lm_head_weight(),
//    targets, r V/tp, ...): every tp rank gets the full values; its loss is
//    the same value computed through collectives whose backward leaves each
//    rank its part, so GradientReducer's sums are the right gradients.
//  - Router replay (ModelInput.forced_topk_ids_tk) is not supported with tp.
// InvalidArgument when vocab_size or a dense layer's intermediate_size does
// not divide by tp (heads and kv heads are checked by ValidateLayoutForModel).
absl::Status ApplyTensorParallel(Qwen3Model& model, const ParallelState& state);

// The model's parameters, split by the group that holds their replicas.
struct ParameterGroups {
  // Replicated over tp-dp-cp. With tp > 1 each tp rank's gradient is its
  // part (its token rows, or for q/k-norm its heads): summed over tp-dp-cp.
  std::vector<at::Tensor> dense;
  std::vector<at::Tensor> tensor_sharded;  // a slice per tp rank, replicated over dp-cp
  std::vector<at::Tensor> experts;         // sharded over ep (and etp), replicated over edp
};
ParameterGroups SplitParameters(Qwen3Model& model);

class GradientReducer {
 public:
  explicit GradientReducer(const ParallelState& state, int64_t bucket_bytes = 64 << 20);

  // Sums every gradient over its replicas (dense: tp-dp-cp, tensor-sharded:
  // dp-cp, experts: edp; a tied embedding table also over the embedding
  // group, first and last pipeline stage, Megatron's rule) and
  // multiplies by `scale`. Reduces in fp32 whatever the gradient dtype, in
  // fixed buckets of parameters in model order (deterministic). A parameter
  // without a gradient gets zeros first, so all ranks send the same layout.
  // Unavailable (with the collective's message) when a peer fails.
  absl::Status Reduce(Qwen3Model& model, double scale = 1.0) const;

 private:
  void ReduceList(const std::vector<at::Tensor>& params, const ProcessGroup& group, double scale) const;

  std::shared_ptr<const ProcessGroup> dense_group_, sharded_group_, expert_group_, embedding_group_;
  int64_t bucket_bytes_;
};

// Sum of `local` over the ranks of `kind`'s group, the same value on each of
// them. Throws CollectiveError when a peer fails.
double SumOverGroup(const ParallelState& state, RankGroupKind kind, double local);

// Sum of `local` over the ranks with distinct tokens (dp-cp), e.g. the
// global token count N_global of the loss convention above.
inline double SumOverDataParallel(const ParallelState& state, double local) {
  return SumOverGroup(state, RankGroupKind::kDataContext, local);
}

// L2 norm of the whole model's gradient (every expert and layer once), after
// Reduce: dense squares are summed over pp (a tied embedding's copy on the
// last stage is not counted), tensor-sharded squares over tp-pp, expert
// squares over etp-ep-pp. Accumulated in fp64; the same value on all ranks.
double GlobalGradNorm(Qwen3Model& model, const ParallelState& state);

// torch's clip_grad_norm_ with the global norm: scales every gradient by
// max_norm / (norm + 1e-6) when that is below 1. Returns the norm before.
double ClipGradNorm(Qwen3Model& model, const ParallelState& state, double max_norm);

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_PARALLELIZE_H_
