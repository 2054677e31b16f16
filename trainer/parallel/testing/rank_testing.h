// Small helpers shared by the multi-rank tests (RunInProcessRanks):
//
//   RunInProcessRanks(LayoutDims("megatron:(attn:t2|ffn:e2)"), body, TestRankOptions());
//   EXPECT_LE(MaxRelativeError(got, one_process), 1e-6);
#ifndef MOERL_TRAINER_PARALLEL_TESTING_RANK_TESTING_H_
#define MOERL_TRAINER_PARALLEL_TESTING_RANK_TESTING_H_

#include <ATen/core/Tensor.h>

#include <string>

#include "trainer/parallel/parallel_state.h"

namespace moerl {

// The training dimensions of `allocation` (e.g. "megatron:d1t2"); a gtest
// failure, and default dimensions, when it does not parse or validate.
ParallelDims LayoutDims(const std::string& allocation);

// Rank options for tests: a 30 s collective timeout, so that a rank that
// fails makes the others fail soon instead of waiting minutes.
ParallelOptions TestRankOptions();

// max |a - b| / max |b| (1 when b is all zeros).
double MaxRelativeError(const at::Tensor& a, const at::Tensor& b);

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_TESTING_RANK_TESTING_H_
