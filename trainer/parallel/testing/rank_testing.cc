#include "trainer/parallel/testing/rank_testing.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/max.h>
#include <ATen/ops/sub.h>

#include <chrono>

#include "common/alloc_mode/alloc_mode.h"
#include "gtest/gtest.h"

namespace moerl {

ParallelDims LayoutDims(const std::string& allocation) {
  auto mode = ParseAllocationMode(allocation);
  EXPECT_TRUE(mode.ok()) << mode.status();
  if (!mode.ok()) return {};
  auto dims = TrainingDims(*mode);
  EXPECT_TRUE(dims.ok()) << dims.status();
  return dims.ok() ? *dims : ParallelDims{};
}

ParallelOptions TestRankOptions() {
  ParallelOptions options;
  options.comm.timeout = std::chrono::seconds(30);
  return options;
}

double MaxRelativeError(const at::Tensor& a, const at::Tensor& b) {
  const double scale = b.abs().max().item<double>();
  return (a - b).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

}  // namespace moerl
