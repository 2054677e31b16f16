// Tensor parallelism with sequence parallelism (Megatron-LM's), as autograd
// ops over one ProcessGroup (the tp group) plus the vocabulary-parallel
// embedding and log-probabilities. ApplyTensorParallel (parallelize.h) puts
// them into the one-device model through its seams (BlockMaps,
// Qwen3Model::SetEmbedding, WeightModule::KeepSlice); the model never sees a
// rank.
//
// With sequence parallelism the hidden states between blocks are split along
// tokens: rank r of tp holds rows [r T/tp, (r+1) T/tp) of h_td. A block
// gathers the rows before its column-parallel projections and reduce-scatters
// the row-parallel output:
//
//   x_td   = GatherSequence(RmsNorm(h_sd))          all-gather / bwd reduce-scatter
//   y_td^r = x_td W_col^r ... W_row^r               this rank's heads or F slice
//   h_sd  += ReduceScatterSequence(y_td^r)          reduce-scatter / bwd all-gather
//
// (shape letters: t all tokens, s this rank's T/tp tokens, d hidden, v the
// local vocabulary slice, n rows scored). Without sequence parallelism
// Megatron's f and g are CopyToTensorParallel / ReduceFromTensorParallel.
//
//   at::Tensor x_td = GatherSequence(h_sd, tp_group);
//   TokenLogProbs r = VocabParallelTokenLogProbs(x_td.index_select(0, rows), lm_head_local_vd,
//                                                targets_n, first_vocab_row, 1.0, tp_group);
//
// Every collective is deterministic (fixed order, sums in rank order). The
// group must outlive the autograd graphs built with it (ParallelState owns
// it). Collectives throw CollectiveError (process_groups.h); every member
// must call each op in the same order, with the same shapes.
#ifndef MOERL_TRAINER_PARALLEL_TENSOR_PARALLEL_H_
#define MOERL_TRAINER_PARALLEL_TENSOR_PARALLEL_H_

#include <ATen/core/Tensor.h>

#include "trainer/model/logprobs.h"
#include "trainer/parallel/process_groups.h"

namespace moerl {

// Plain collectives along dim 0 (no autograd): the members' tensors
// concatenated in member order; and this member's block of the sum
// (input rows divisible by the group size).
at::Tensor AllGatherRows(const at::Tensor& x, const ProcessGroup& group);
at::Tensor ReduceScatterRows(const at::Tensor& x, const ProcessGroup& group);

// f: identity forward, all-reduce backward (input of column-parallel linears
// without sequence parallelism).
at::Tensor CopyToTensorParallel(const at::Tensor& x, const ProcessGroup& group);
// g: all-reduce forward, identity backward (output of row-parallel linears
// without sequence parallelism; partial sums of a value every member then
// uses identically).
at::Tensor ReduceFromTensorParallel(const at::Tensor& x, const ProcessGroup& group);
// Sequence parallel f: all-gather rows forward, reduce-scatter backward.
at::Tensor GatherSequence(const at::Tensor& x_sd, const ProcessGroup& group);
// Sequence parallel g: reduce-scatter rows forward, all-gather backward.
// T must be divisible by the group size.
at::Tensor ReduceScatterSequence(const at::Tensor& x_td, const ProcessGroup& group);

// Vocabulary-parallel embedding: table_vd holds vocabulary rows
// [first_row, first_row + v); ids outside give zeros, and the members' partial
// rows are summed: reduce-scattered along tokens when sequence_parallel
// (returns [T/tp, D]), else all-reduced (returns [T, D]).
at::Tensor VocabParallelEmbedding(const at::Tensor& table_vd, const at::Tensor& tokens_t, int64_t first_row,
                                  const ProcessGroup& group, bool sequence_parallel);

// ComputeTokenLogProbs (logprobs.h) with the LM head split by vocabulary:
// lm_head_vd holds rows [first_row, first_row + v). The [N, V] logits never
// exist whole: the row max is all-gathered, sum-exp (and for the entropy
// sum p z) all-reduced, the target logit taken on its owner and all-reduced.
// hidden_nd is the same on every member and must come through
// GatherSequence or CopyToTensorParallel (its gradient here is this member's
// part). Returns the same values on every member; backward gives each its
// part of dL/dz.
TokenLogProbs VocabParallelTokenLogProbs(const at::Tensor& hidden_nd, const at::Tensor& lm_head_vd,
                                         const at::Tensor& targets_n, int64_t first_row, double temperature,
                                         const ProcessGroup& group, bool with_entropy = true);

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_TENSOR_PARALLEL_H_
