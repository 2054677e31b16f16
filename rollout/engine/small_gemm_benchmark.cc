// SmallGemmNT against at::linear (MKL) on decode-step shapes, and the
// machine's single-stream read bandwidth (the floor for a decode step, which
// reads every weight once). Manual:
//   bazel build //rollout/engine:small_gemm_benchmark
//   ./bazel-bin/rollout/engine/small_gemm_benchmark --threads=1
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/sum.h>

#include <time.h>

#include <cstdio>
#include <string>

#include "rollout/engine/small_gemm.h"

namespace {

// CPU time of this thread: on a shared machine wall time mostly measures the
// other processes (threads=1 runs everything on this thread).
double Now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

template <typename F>
double BestSeconds(F f, int reps) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double start = Now();
    f();
    best = std::min(best, Now() - start);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--threads=", 0) == 0) threads = std::stoi(a.substr(10));
  }
  at::set_num_threads(threads);
  // 256 MiB, far beyond the L3: a pure DRAM read.
  at::Tensor big = at::randn({64 << 20});
  double s = BestSeconds([&] { (void)big.sum(); }, 5);
  std::printf("threads=%d  read bandwidth (sum of 256 MiB): %.1f GB/s\n", threads, big.numel() * 4 / s / 1e9);
  // One decode step's expert weights of the bench config: 16 experts x 4
  // layers of gate_up [512, 512] and down [512, 256] (~100 MB), m rows each.
  const int64_t experts = 64, d = 512, f = 256;
  at::Tensor gu = at::randn({experts, 2 * f, d}), down = at::randn({experts, d, f});
  for (int64_t m : {1, 2, 4, 8}) {
    at::Tensor x = at::randn({m, d}), xf = at::randn({m, f});
    at::Tensor y = at::empty({m, 2 * f}), yd = at::empty({m, d});
    const double bytes = 4.0 * experts * (2 * f * d + d * f);
    double mkl = BestSeconds([&] {
      for (int64_t e = 0; e < experts; ++e) {
        (void)at::linear(x, gu[e]);
        (void)at::linear(xf, down[e]);
      }
    }, 5);
    double ours = BestSeconds([&] {
      for (int64_t e = 0; e < experts; ++e) {
        moerl::SmallGemmNT(x.data_ptr<float>(), m, d, gu[e].data_ptr<float>(), 2 * f, y.data_ptr<float>());
        moerl::SmallGemmNT(xf.data_ptr<float>(), m, f, down[e].data_ptr<float>(), d, yd.data_ptr<float>());
      }
    }, 5);
    std::printf("m=%ld  100 MB of experts: at::linear %.1f ms (%.1f GB/s)   SmallGemmNT %.1f ms (%.1f GB/s)\n",
                static_cast<long>(m), mkl * 1e3, bytes / mkl / 1e9, ours * 1e3, bytes / ours / 1e9);
  }
  return 0;
}
