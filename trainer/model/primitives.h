// Stateless building blocks of a Qwen3 decoder layer, as plain functions on
// at::Tensor (autograd-aware, dtype-preserving), written to match
// transformers' modeling_qwen3_moe.py operation for operation.
//
//   RMSNorm:  y = w * cast_back( x_f32 / sqrt(mean(x_f32^2) + eps) )
//   RoPE:     inv_freq[i] = theta^(-2i/d); angle[t, i] = pos[t] * inv_freq[i];
//             cos/sin over [angle, angle] in fp32, cast to x's dtype;
//             x' = x * cos + rotate_half(x) * sin,  rotate_half(x) = [-x2, x1]
//             (pairs (i, i + d/2), the NeoX / "rotate_half" convention)
//   SwiGLU:   y = down( silu(gate(x)) * up(x) )
//
// Shape letters: t tokens, h heads, d head_dim or hidden, f FFN width.
//
//   at::Tensor y_td = RmsNorm(x_td, weight_d, 1e-6);
//   RopeTables rope = MakeRopeTables(positions_t, head_dim, 1e6, at::kFloat);
//   q_thd = ApplyRope(q_thd, rope);
//
// Thread-compatible; no state.
#ifndef MOERL_TRAINER_MODEL_PRIMITIVES_H_
#define MOERL_TRAINER_MODEL_PRIMITIVES_H_

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

namespace moerl {

// RMS over the last dim in fp32, cast back to x's dtype, times weight (fp32:
// one autograd node with a fused backward).
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

struct RopeTables {
  at::Tensor cos_td;  // [T, head_dim], activation dtype
  at::Tensor sin_td;
};

// positions_t: int64 [T].
RopeTables MakeRopeTables(const at::Tensor& positions_t, int64_t head_dim, double theta,
                          c10::ScalarType dtype);

// x_thd: [T, heads, head_dim].
at::Tensor ApplyRope(const at::Tensor& x_thd, const RopeTables& rope);

// down(silu(gate(x)) * up(x)) with separate [f, d] gate/up and [d, f] down.
at::Tensor SwiGlu(const at::Tensor& x_td, const at::Tensor& gate_fd, const at::Tensor& up_fd,
                  const at::Tensor& down_df);

// The same with gate and up fused into one [2f, d] matrix (gate rows first).
at::Tensor SwiGluFused(const at::Tensor& x_td, const at::Tensor& gate_up_2fd, const at::Tensor& down_df);

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_PRIMITIVES_H_
