// Causal self-attention of B equal-length sequences for training, as batched
// GEMMs over query blocks with a hand-written backward.
//
// Why not scaled_dot_product_attention: on CPU its fp32 flash kernel runs
// 64 x 64 tiles at a fraction of the GEMM rate (forward + backward took about
// 3x the time of the same FLOPs as large GEMMs in model_benchmark's profile).
// Here query block j (positions [jQ, (j+1)Q)) attends to keys [0, (j+1)Q)
// with one bmm per step, so only the blocks on or below the diagonal are
// computed (5/8 of the full square for L = 4Q instead of the causal 1/2),
// in GEMMs large enough to run near the machine's GEMM rate. GQA needs no
// repeated K/V: the `rep` query heads sharing a KV head are stacked as rows.
//
//   S = Q_j K^T * scale, masked above the diagonal;  P = softmax(S);  O_j = P V
//   backward: dP = dO_j V^T;  dS = P * (dP - rowsum(dO_j * O_j)) * scale;
//             dQ_j = dS K;  dK += dS^T Q_j;  dV += P^T dO_j.
// P is kept for backward (B * heads * Q * L * 5/8 floats per layer for L=4Q).
//
// Shape letters: b sequences, l positions, h query heads, k KV heads, d head_dim.
//
//   at::Tensor out_blhd = BlockCausalAttention(q_blhd, k_blkd, v_blkd, 1.0 / 8.0);
//
// Thread-compatible; no state. Not twice differentiable.
#ifndef MOERL_TRAINER_MODEL_BLOCK_CAUSAL_ATTENTION_H_
#define MOERL_TRAINER_MODEL_BLOCK_CAUSAL_ATTENTION_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace moerl {

// q_blhd: [B, L, H, D]; k_blkd, v_blkd: [B, L, K, D] with H % K == 0 (query
// head i uses KV head i / (H / K)). Returns [B, L, H, D]. `block` is the
// query block length Q.
at::Tensor BlockCausalAttention(const at::Tensor& q_blhd, const at::Tensor& k_blkd, const at::Tensor& v_blkd,
                                double scale, int64_t block = 128);

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_BLOCK_CAUSAL_ATTENTION_H_
