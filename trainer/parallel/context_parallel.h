// Context parallelism (Megatron-LM's, cp_comm_type=all_gather): the tokens
// of a packed micro-batch are split over the cp group, attention stays exact.
//
// Layout (load-balanced for causal attention): every sequence (segment) of
// the packed micro-batch is padded to a multiple of 2cp and cut into 2cp
// equal chunks; rank r holds chunks r and 2cp-1-r of each segment, in
// segment order, so every rank holds the same number of rows and the same
// share of the causal work. A segment shorter than 2cp is padded up to 2cp
// (one row per chunk). When the rows of a part must divide by a multiple
// (sequence parallelism over tp), a padding segment is added at the end.
// Padding rows carry no loss and stay out of the routers' losses.
//
// Attention: each rank computes q, k, v for its rows, all-gathers k and v
// over cp (backward: reduce-scatter of their gradients) and attends its
// queries to the keys of their own segment with a causal mask by global
// position: the same result as one process on the whole sequence.
//
// Log-probs: the model takes the whole packed micro-batch on every cp rank
// (targets are the next tokens, which may sit in another rank's chunk);
// each rank scores the target rows it holds, and the values are summed over
// cp into the whole [N] (every entry is nonzero on one rank, so the sum is
// exact) with identity backward: every cp rank has the whole PolicyOutput
// and the same loss, and each gets the gradient of its own rows. The loss of
// the tokens is therefore replicated over cp: the trainer divides by the
// token count summed over dp (not dp-cp), while the routers' losses are
// shares of distinct rows, summed over tp-dp-cp as before.
//
// Shape letters: t input rows, n rows of one part, g rows of all parts in
// padded order, h query heads, k KV heads, d head_dim.
//
//   ContextSplit split = SplitForContext(layout, /*padding_tokens=*/0, /*cp=*/2, /*rank=*/0, /*row_multiple=*/1);
//   at::Tensor out_nhd = ContextParallelAttention(q_nhd, k_nkd, v_nkd, split, cp_group);
//
// Thread-compatible; every rank of the cp group calls each collective in the
// same order with the same split (it depends only on the layout).
#ifndef MOERL_TRAINER_PARALLEL_CONTEXT_PARALLEL_H_
#define MOERL_TRAINER_PARALLEL_CONTEXT_PARALLEL_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "trainer/model/attention.h"
#include "trainer/model/model.h"
#include "trainer/parallel/parallel_state.h"
#include "trainer/parallel/process_groups.h"

namespace moerl {

struct ContextSplit {
  int64_t cp = 1, rank = 0;
  int64_t rows_per_part = 0;  // n, the same for every part
  // Every part's rows, part k = rank k (int64 [cp, n]): the input row each
  // holds (-1: padding, also for the input's own padding_tokens), and its
  // index in the padded packed order (a permutation of [0, cp n)).
  at::Tensor input_row_kn, padded_index_kn;
  at::Tensor segment_offset_kn;  // int64 [cp, n]: the row's offset in its padded segment
  at::Tensor gather_order_g;     // int64 [cp n]: for padded index g, its row in the parts concatenated
  // Per padded segment: first padded index, padded length (a multiple of
  // 2cp), and where its 2 chunks start in a part.
  std::vector<int64_t> segment_start, segment_len, part_start;
  // int64 [t]: the row of this rank's part that holds input row i, or -1.
  at::Tensor part_row_t;
};

// The split of a packed micro-batch with segments `layout` whose last
// `padding_tokens` rows only pad it (ModelInput::padding_tokens) over cp
// ranks, seen from `rank`; each part's row count is a multiple of
// row_multiple (>= 1).
ContextSplit SplitForContext(const PackedLayout& layout, int64_t padding_tokens, int64_t cp, int64_t rank,
                             int64_t row_multiple);

// This rank's part of `input` under `split`: tokens, global positions
// (padding rows continue their segment's positions) and replayed routes
// (padding rows -1) of its rows.
ContextPart TakeContextPart(const ModelInput& input, const ContextSplit& split);

// Causal attention of this rank's queries q_nhd [n, h, d] over the keys and
// values of every part (k_nkd, v_nkd [n, k, d] this rank's, all-gathered over
// `group`, the cp group): query i attends the keys of its segment at padded
// index <= its own. Returns [n, h, d]. The backward reduce-scatters the key
// and value gradients (each rank gets those of its rows, summed over cp).
at::Tensor ContextParallelAttention(const at::Tensor& q_nhd, const at::Tensor& k_nkd, const at::Tensor& v_nkd,
                                    const ContextSplit& split, const ProcessGroup& group);

// Installs context parallelism on `model` (ParallelizeQwen3 calls it after
// ApplyTensorParallel; nothing for cp = 1): Qwen3Model::SetContextSplit with
// the split above (parts divisible by tp under sequence parallelism), an
// attention core on every layer, and a token scorer that scores this rank's
// rows (through the tensor-parallel scorer when tp > 1) and sums the values
// over cp. Unimplemented with pp > 1.
absl::Status ApplyContextParallel(Qwen3Model& model, const ParallelState& state);

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_CONTEXT_PARALLEL_H_
