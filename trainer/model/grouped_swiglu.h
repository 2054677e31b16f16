// SwiGLU experts over rows already grouped by expert, as one autograd
// function with a hand-written backward (the fast path behind
// GroupedExperts in moe.h).
//
// For expert e and its rows x_e (a contiguous block of tokens_nd):
//   gu_e = x_e G_e^T   [c, 2F]  (gate_up_efd[e] = [gate; up], gate rows first)
//   a_e  = silu(gu_e[:, :F]) * gu_e[:, F:]
//   y_e  = a_e D_e^T   [c, D]
// Backward (dy given):
//   da = dy D_e,  dD_e = dy^T a_e,
//   dgate = silu'(g) * u * da,  dup = silu(g) * da,
//   dG_e = [dgate, dup]^T x_e,  dx_e = [dgate, dup] G_e.
// Every GEMM writes straight into its slice of one preallocated tensor, so
// neither direction builds per-expert weight views whose gradients would be
// zero-filled full [E, ...] tensors summed E times (what autograd does for
// gate_up_efd[e]), and no split/cat of the activations is needed.
//
// Shape letters: n grouped token copies, d hidden, e experts, f FFN width.
//
//   at::Tensor y_nd = GroupedSwiGlu(tokens_nd, {3, 0, 5}, gate_up_efd, down_edf);
//   y_nd.sum().backward();  // grads for tokens_nd, gate_up_efd, down_edf
//
// Thread-compatible; no state. Not twice differentiable.
#ifndef MOERL_TRAINER_MODEL_GROUPED_SWIGLU_H_
#define MOERL_TRAINER_MODEL_GROUPED_SWIGLU_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace moerl {

// tokens_nd: rows grouped by expert, sum(tokens_per_expert) == n;
// gate_up_efd: [E, 2F, D]; down_edf: [E, D, F]. Returns [n, D].
at::Tensor GroupedSwiGlu(const at::Tensor& tokens_nd, const std::vector<int64_t>& tokens_per_expert,
                         const at::Tensor& gate_up_efd, const at::Tensor& down_edf);

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_GROUPED_SWIGLU_H_
