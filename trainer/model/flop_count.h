// Matmul FLOPs of the model, and the machine's measured fp32 GEMM rate: the
// two sides of the "% of GEMM" figure the benchmarks print.
//
//   const double gemm = MeasureGemmFlops(2048);               // FLOP/s
//   const double step = 3 * ForwardMatmulFlops(config, {512, 512}, scored_rows);
//   std::printf("%.0f%% of GEMM\n", 100 * step / seconds / gemm);
//
// Counted: every matmul of the forward at 2 FLOPs a multiply-add: the
// attention projections, causal attention at its minimum (each query scores
// the keys up to itself: QK^T and PV), the router, the active experts
// (top-k of each token) or the dense MLP, and the LM head over the rows that
// are scored. Not counted: norms, RoPE, softmax, elementwise ops, the
// optimizer. A training step is 3x the forward (backward: gradients of
// inputs and of weights).
// Stateless; thread-safe (MeasureGemmFlops uses torch's intra-op threads).
#ifndef MOERL_TRAINER_MODEL_FLOP_COUNT_H_
#define MOERL_TRAINER_MODEL_FLOP_COUNT_H_

#include <cstdint>
#include <vector>

#include "trainer/model/config.h"

namespace moerl {

// Forward matmul FLOPs of packed sequences of `lengths` (each attends only
// to itself), with the LM head applied to `scored_rows` rows in all.
double ForwardMatmulFlops(const ModelConfig& config, const std::vector<int64_t>& lengths, int64_t scored_rows);

// The best of a few n x n fp32 matmuls, FLOP/s of wall time. With
// `cpu_flops`, also the rate per process CPU-second (kept at the max of
// its old value and this run's).
double MeasureGemmFlops(int64_t n, double* cpu_flops = nullptr);

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_FLOP_COUNT_H_
