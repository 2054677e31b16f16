#include "trainer/parallel/context_parallel.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/argsort.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "trainer/model/logprobs.h"
#include "trainer/parallel/tensor_parallel.h"

namespace moerl {

ContextSplit SplitForContext(const PackedLayout& layout, int64_t padding_tokens, int64_t cp, int64_t rank,
                             int64_t row_multiple) {
  MOERL_CHECK(cp >= 1 && rank >= 0 && rank < cp && row_multiple >= 1 && padding_tokens >= 0)
      << "cp " << cp << " rank " << rank << " row_multiple " << row_multiple << " padding " << padding_tokens;
  const int64_t chunks = 2 * cp;
  // Per padded segment: its first input row and input length (0 for a
  // segment that only pads the parts to row_multiple).
  std::vector<int64_t> in_start, in_len;
  int64_t total = 0, n = 0;
  ContextSplit split;
  split.cp = cp;
  split.rank = rank;
  for (int64_t len : layout.seq_lens) {
    MOERL_CHECK(len >= 0) << "segment of length " << len;
    if (len == 0) continue;
    in_start.push_back(total);
    in_len.push_back(len);
    total += len;
    split.segment_len.push_back((len + chunks - 1) / chunks * chunks);
    n += split.segment_len.back() / cp;
  }
  MOERL_CHECK(padding_tokens <= total) << padding_tokens << " padding tokens of " << total;
  if (n % row_multiple != 0) {
    // n is even (2 chunks per segment), so some count of 2cp-row chunks fits.
    int64_t extra = chunks;
    while ((n + extra / cp) % row_multiple != 0) extra += chunks;
    in_start.push_back(total);
    in_len.push_back(0);
    split.segment_len.push_back(extra);
    n += extra / cp;
  }
  split.rows_per_part = n;
  const int64_t real_end = total - padding_tokens;
  std::vector<int64_t> input_row(static_cast<size_t>(cp * n)), padded_index(static_cast<size_t>(cp * n)),
      offset(static_cast<size_t>(cp * n));
  int64_t start = 0, part_at = 0;
  for (size_t s = 0; s < split.segment_len.size(); ++s) {
    const int64_t c = split.segment_len[s] / chunks;  // rows per chunk
    split.segment_start.push_back(start);
    split.part_start.push_back(part_at);
    for (int64_t k = 0; k < cp; ++k) {
      // Part k: chunk k, then chunk 2cp-1-k.
      for (int64_t half = 0; half < 2; ++half) {
        const int64_t chunk = half == 0 ? k : chunks - 1 - k;
        for (int64_t i = 0; i < c; ++i) {
          const size_t at = static_cast<size_t>(k * n + part_at + half * c + i);
          const int64_t off = chunk * c + i;
          int64_t row = off < in_len[s] ? in_start[s] + off : -1;
          if (row >= real_end) row = -1;
          input_row[at] = row;
          padded_index[at] = start + off;
          offset[at] = off;
        }
      }
    }
    start += split.segment_len[s];
    part_at += 2 * c;
  }
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  split.input_row_kn = at::tensor(input_row, i64).reshape({cp, n});
  split.padded_index_kn = at::tensor(padded_index, i64).reshape({cp, n});
  split.segment_offset_kn = at::tensor(offset, i64).reshape({cp, n});
  split.gather_order_g = at::argsort(split.padded_index_kn.reshape({-1}));
  std::vector<int64_t> part_row(static_cast<size_t>(total), -1);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t row = input_row[static_cast<size_t>(rank * n + j)];
    if (row >= 0) part_row[static_cast<size_t>(row)] = j;
  }
  split.part_row_t = at::tensor(part_row, i64);
  return split;
}

ContextPart TakeContextPart(const ModelInput& input, const ContextSplit& split) {
  const at::Tensor rows_n = split.input_row_kn[split.rank];
  const at::Tensor real_n = rows_n.ge(0);
  const at::Tensor safe_n = rows_n.clamp_min(0);
  const bool any_input = input.tokens_t.size(0) > 0;
  ContextPart part;
  part.real_t = real_n;
  ModelInput& local = part.input;
  if (any_input) {
    local.tokens_t = at::where(real_n, input.tokens_t.index_select(0, safe_n), at::zeros_like(rows_n));
    // Padding rows continue their segment's positions (they attend only to
    // their own segment, and nothing real attends to them).
    local.positions_t = at::where(real_n, input.positions_t.index_select(0, safe_n), split.segment_offset_kn[split.rank]);
  } else {
    local.tokens_t = at::zeros_like(rows_n);
    local.positions_t = split.segment_offset_kn[split.rank].clone();
  }
  for (const at::Tensor& forced_tk : input.forced_topk_ids_tk) {
    local.forced_topk_ids_tk.push_back(at::where(real_n.unsqueeze(1), forced_tk.index_select(0, safe_n),
                                                 at::full_like(forced_tk.narrow(0, 0, 1), -1)));
  }
  local.layout.seq_lens = {split.rows_per_part};
  return part;
}

at::Tensor ContextParallelAttention(const at::Tensor& q_nhd, const at::Tensor& k_nkd, const at::Tensor& v_nkd,
                                    const ContextSplit& split, const ProcessGroup& group) {
  const int64_t n = q_nhd.size(0), heads = q_nhd.size(1), kv_heads = k_nkd.size(1), d = q_nhd.size(2);
  MOERL_CHECK(n == split.rows_per_part && k_nkd.size(0) == n && v_nkd.size(0) == n && heads % kv_heads == 0)
      << "context-parallel attention on " << n << " rows, split of " << split.rows_per_part;
  MOERL_CHECK(group.size() == split.cp) << "cp group of " << group.size() << ", split over " << split.cp;
  if (n == 0) return q_nhd.clone();  // every part is empty (the split is the same on all ranks)
  // All parts' keys and values, from rank order into padded order.
  const at::Tensor k_gkd = GatherSequence(k_nkd.contiguous(), group).index_select(0, split.gather_order_g);
  const at::Tensor v_gkd = GatherSequence(v_nkd.contiguous(), group).index_select(0, split.gather_order_g);
  const at::Tensor my_index_n = split.padded_index_kn[split.rank];
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const int64_t rep = heads / kv_heads;
  std::vector<at::Tensor> outs;
  for (size_t s = 0; s < split.segment_len.size(); ++s) {
    const int64_t len = split.segment_len[s], rows = len / split.cp;
    // Queries of this segment in the part ([r, h, d] -> [h, r, d]), keys and
    // values of the whole segment ([L, k, d] -> [h, L, d], GQA: query head j
    // reads KV head j / rep).
    const at::Tensor q_hrd = q_nhd.narrow(0, split.part_start[s], rows).to(at::kFloat).permute({1, 0, 2});
    const at::Tensor k_hld =
        k_gkd.narrow(0, split.segment_start[s], len).to(at::kFloat).repeat_interleave(rep, 1).permute({1, 0, 2});
    const at::Tensor v_hld =
        v_gkd.narrow(0, split.segment_start[s], len).to(at::kFloat).repeat_interleave(rep, 1).permute({1, 0, 2});
    const at::Tensor query_r = my_index_n.narrow(0, split.part_start[s], rows);
    const at::Tensor key_l = at::arange(split.segment_start[s], split.segment_start[s] + len, query_r.options());
    const at::Tensor future_rl = key_l.unsqueeze(0).gt(query_r.unsqueeze(1));  // [r, L]
    at::Tensor scores_hrl = at::matmul(q_hrd, k_hld.transpose(1, 2)) * scale;
    scores_hrl = scores_hrl.masked_fill(future_rl.unsqueeze(0), -std::numeric_limits<float>::infinity());
    outs.push_back(at::matmul(at::softmax(scores_hrl, -1), v_hld).permute({1, 0, 2}));  // [r, h, d]
  }
  return at::cat(outs, 0).to(q_nhd.scalar_type());
}

absl::Status ApplyContextParallel(Qwen3Model& model, const ParallelState& state) {
  const ParallelDims& dims = state.dims();
  if (dims.cp == 1) return absl::OkStatus();
  if (dims.pp > 1 || !model.holds_all_layers()) {
    return absl::UnimplementedError(absl::StrCat("the layout ", DebugString(dims), " uses cp=", dims.cp,
                                                 " with pp=", dims.pp,
                                                 "; context parallelism inside pipeline stages is not "
                                                 "implemented yet (use cp or pp)"));
  }
  std::shared_ptr<const ProcessGroup> group = state.shared_group(RankGroupKind::kContext);
  const int64_t cp = dims.cp, rank = group->rank(), multiple = model.sequence_shards();
  // The split of the forward in flight: the attention cores and the scorer
  // of that forward read it (one forward at a time per model).
  auto current = std::make_shared<ContextSplit>();
  model.SetContextSplit([current, cp, rank, multiple](const ModelInput& input) {
    *current = SplitForContext(input.layout, input.padding_tokens, cp, rank, multiple);
    return TakeContextPart(input, *current);
  });
  for (const auto& layer : model.layers()) {
    layer->self_attn->set_core([current, group](const at::Tensor& q_thd, const at::Tensor& k_tkd,
                                                const at::Tensor& v_tkd) {
      return ContextParallelAttention(q_thd, k_tkd, v_tkd, *current, *group);
    });
  }
  // Scores the target rows this part holds (through the tensor-parallel
  // scorer when there is one: it gathers the part's rows over tp), then
  // sums the values over cp: every rank gets all of them, and the identity
  // backward leaves each rank the gradient of its own rows.
  Qwen3Model::TokenScorer inner = model.token_scorer();
  model.SetTokenScorer([inner, current, group](const at::Tensor& hidden_td, const at::Tensor& lm_head_vd,
                                               const at::Tensor& rows_n, const at::Tensor& targets_n,
                                               double temperature, bool with_entropy) {
    const at::Tensor part_rows_n = current->part_row_t.index_select(0, rows_n);
    const at::Tensor mine_m = part_rows_n.ge(0).nonzero().reshape({-1});
    const at::Tensor rows_m = part_rows_n.index_select(0, mine_m), targets_m = targets_n.index_select(0, mine_m);
    const TokenLogProbs part =
        inner ? inner(hidden_td, lm_head_vd, rows_m, targets_m, temperature, with_entropy)
              : ComputeTokenLogProbs(hidden_td.index_select(0, rows_m), lm_head_vd, targets_m, temperature,
                                     with_entropy);
    auto whole = [&](const at::Tensor& values_m) {
      const at::Tensor all_n = at::zeros({rows_n.size(0)}, values_m.options()).index_copy(0, mine_m, values_m);
      return ReduceFromTensorParallel(all_n, *group);
    };
    TokenLogProbs out;
    out.logprobs_n = whole(part.logprobs_n);
    if (part.entropy_n.defined()) out.entropy_n = whole(part.entropy_n);
    return out;
  });
  return absl::OkStatus();
}

}  // namespace moerl
