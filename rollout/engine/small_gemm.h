// Weight-streaming fp32 matmul for decode steps: y = x W^T with few rows.
//
// A decode step multiplies a handful of token rows (m <= batch) by large
// weight matrices, so the time is the time to stream W from DRAM once. MKL's
// sgemm reaches ~2-3 GB/s at m <= 8 on this machine (it packs W for
// compute-bound shapes); this kernel walks W row by row, each row loaded
// once and dotted with all m x rows from L1, which runs at the memory
// bandwidth. Rounding differs from MKL by float noise (summation order).
//
//   y[i, j] = sum_l x[i, l] * W[j, l]     x [m, k], W [n, k], y [m, n]
//
//   SmallGemmNT(x_mk, m, k, w_nk, n, y_mn);   // all row-major, contiguous
//
// Threading: splits n over at::parallel_for (at::get_num_threads()).
#ifndef MOERL_ROLLOUT_ENGINE_SMALL_GEMM_H_
#define MOERL_ROLLOUT_ENGINE_SMALL_GEMM_H_

#include <cstdint>

namespace moerl {

// y_mn = x_mk * w_nk^T. y may not alias x or w.
void SmallGemmNT(const float* x_mk, int64_t m, int64_t k, const float* w_nk, int64_t n, float* y_mn);

// The plain triple loop (double accumulation), the reference for tests.
void SmallGemmNTReference(const float* x_mk, int64_t m, int64_t k, const float* w_nk, int64_t n,
                          float* y_mn);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_ENGINE_SMALL_GEMM_H_
