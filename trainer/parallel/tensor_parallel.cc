#include "trainer/parallel/tensor_parallel.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "common/logging.h"

namespace moerl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

enum class Op : int64_t { kIdentity, kAllReduce, kAllGather, kReduceScatter };

at::Tensor Run(Op op, const at::Tensor& x, const ProcessGroup& group) {
  switch (op) {
    case Op::kIdentity: return x;
    case Op::kAllReduce: {
      at::Tensor sum = x.contiguous().clone();
      group.AllReduceSum(sum);
      return sum;
    }
    case Op::kAllGather: return AllGatherRows(x, group);
    case Op::kReduceScatter: return ReduceScatterRows(x, group);
  }
  return x;
}

// One collective forward, its conjugate backward. The group is owned by the
// ParallelState, which outlives the graph (stored as an integer: saved_data
// holds IValues).
class ConjugateOps : public torch::autograd::Function<ConjugateOps> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t forward_op, int64_t backward_op,
                            const ProcessGroup* group) {
    ctx->saved_data["group"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(group));
    ctx->saved_data["backward"] = backward_op;
    ctx->saved_data["shape"] = x.sizes().vec();
    ctx->saved_data["dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["device"] = x.device();
    at::Tensor out = Run(static_cast<Op>(forward_op), x, *group);
    // Identity forward must still return a new tensor for autograd.
    return static_cast<Op>(forward_op) == Op::kIdentity ? out.view_as(out) : out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto* group = reinterpret_cast<const ProcessGroup*>(static_cast<intptr_t>(ctx->saved_data["group"].toInt()));
    const auto op = static_cast<Op>(ctx->saved_data["backward"].toInt());
    at::Tensor grad = grads[0];
    if (!grad.defined()) {
      // Every member still takes part in the collective: the output's shape
      // follows from the input's and the op.
      std::vector<int64_t> shape = ctx->saved_data["shape"].toIntVector();
      if (op == Op::kReduceScatter) shape[0] *= group->size();       // forward gathered
      if (op == Op::kAllGather) shape[0] /= group->size();           // forward scattered
      grad = at::zeros(shape, at::TensorOptions()
                                  .dtype(static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt()))
                                  .device(ctx->saved_data["device"].toDevice()));
    }
    return {Run(op, grad, *group), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor Apply(const at::Tensor& x, Op forward, Op backward, const ProcessGroup& group) {
  if (group.size() == 1) return x;
  return ConjugateOps::apply(x, static_cast<int64_t>(forward), static_cast<int64_t>(backward), &group);
}

}  // namespace

at::Tensor AllGatherRows(const at::Tensor& x, const ProcessGroup& group) {
  if (group.size() == 1) return x;
  // An equal all-to-all that sends every member the same block.
  std::vector<at::Tensor> copies(group.size(), x.contiguous());
  return group.AllToAllEqual(at::cat(copies, 0), CommOp::kAllGather);  // [P * rows, ...], member 0's rows first
}

at::Tensor ReduceScatterRows(const at::Tensor& x, const ProcessGroup& group) {
  if (group.size() == 1) return x;
  MOERL_CHECK(x.size(0) % group.size() == 0)
      << "sequence parallel: " << x.size(0) << " rows do not split over " << group.name()
      << " (pad the micro-batch to a multiple of tp)";
  // Block j to member j; what arrives is every member's block for this one,
  // summed in member order (deterministic).
  at::Tensor received = group.AllToAllEqual(x.contiguous(), CommOp::kReduceScatter);
  std::vector<int64_t> shape = x.sizes().vec();
  shape[0] /= group.size();
  shape.insert(shape.begin(), group.size());
  return received.view(shape).sum(0);  // [P, rows / P, ...] -> [rows / P, ...]
}

at::Tensor CopyToTensorParallel(const at::Tensor& x, const ProcessGroup& group) {
  return Apply(x, Op::kIdentity, Op::kAllReduce, group);
}

at::Tensor ReduceFromTensorParallel(const at::Tensor& x, const ProcessGroup& group) {
  return Apply(x, Op::kAllReduce, Op::kIdentity, group);
}

at::Tensor GatherSequence(const at::Tensor& x_sd, const ProcessGroup& group) {
  return Apply(x_sd, Op::kAllGather, Op::kReduceScatter, group);
}

at::Tensor ReduceScatterSequence(const at::Tensor& x_td, const ProcessGroup& group) {
  return Apply(x_td, Op::kReduceScatter, Op::kAllGather, group);
}

at::Tensor VocabParallelEmbedding(const at::Tensor& table_vd, const at::Tensor& tokens_t, int64_t first_row,
                                  const ProcessGroup& group, bool sequence_parallel) {
  const int64_t rows = table_vd.size(0);
  at::Tensor outside_t = (tokens_t < first_row).logical_or(tokens_t >= first_row + rows);
  at::Tensor local_t = (tokens_t - first_row).masked_fill(outside_t, 0);
  at::Tensor part_td = at::embedding(table_vd, local_t).masked_fill(outside_t.unsqueeze(1), 0.0);
  return sequence_parallel ? ReduceScatterSequence(part_td, group) : ReduceFromTensorParallel(part_td, group);
}

TokenLogProbs VocabParallelTokenLogProbs(const at::Tensor& hidden_nd, const at::Tensor& lm_head_vd,
                                         const at::Tensor& targets_n, int64_t first_row, double temperature,
                                         const ProcessGroup& group, bool with_entropy) {
  const int64_t rows = lm_head_vd.size(0);
  // Logits in the model dtype, then fp32 (as ComputeTokenLogProbs).
  at::Tensor z_nv = at::linear(hidden_nd, lm_head_vd).to(at::kFloat) / temperature;
  // The global row max (no gradient: it cancels in the log-softmax).
  at::Tensor max_n = std::get<0>(z_nv.detach().max(1));
  max_n = std::get<0>(AllGatherRows(max_n.unsqueeze(0), group).max(0));  // [P, N] -> [N]
  at::Tensor e_nv = (z_nv - max_n.unsqueeze(1)).exp();
  at::Tensor sum_n = ReduceFromTensorParallel(e_nv.sum(1), group);
  at::Tensor lse_n = sum_n.log() + max_n;
  // The target's logit, from the member that holds its row.
  at::Tensor outside_n = (targets_n < first_row).logical_or(targets_n >= first_row + rows);
  at::Tensor local_n = (targets_n - first_row).masked_fill(outside_n, 0);
  at::Tensor target_n = z_nv.gather(1, local_n.unsqueeze(1)).squeeze(1).masked_fill(outside_n, 0.0);
  target_n = ReduceFromTensorParallel(target_n, group);
  TokenLogProbs out;
  out.logprobs_n = target_n - lse_n;
  if (with_entropy) {
    // H = lse - sum_v p_v z_v, with sum_v p_v z_v = (sum_v e_v z_v) / sum_v e_v.
    at::Tensor ez_n = ReduceFromTensorParallel((e_nv * z_nv).sum(1), group);
    out.entropy_n = lse_n - ez_n / sum_n;
  }
  return out;
}

}  // namespace moerl
