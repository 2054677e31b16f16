#include "trainer/model/logprobs.h"

#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>

#include "gtest/gtest.h"

namespace moerl {
namespace {

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

struct Inputs {
  at::Tensor h_nd, w_vd, y_n;
};

Inputs MakeInputs(int64_t n, int64_t d, int64_t v, uint64_t seed) {
  at::manual_seed(seed);
  Inputs in;
  in.h_nd = at::randn({n, d}).set_requires_grad(true);
  in.w_vd = (at::randn({v, d}) * 0.3).set_requires_grad(true);
  in.y_n = at::randint(v, {n});
  return in;
}

TEST(ChunkedLogProbs, ValuesMatchFullLogitsForEveryChunkSize) {
  Inputs in = MakeInputs(37, 16, 301, 1);
  TokenLogProbs ref = ReferenceTokenLogProbs(in.h_nd, in.w_vd, in.y_n, 0.7);
  for (int64_t chunk : {1, 5, 36, 37, 1000}) {
    TokenLogProbs got = ComputeTokenLogProbs(in.h_nd, in.w_vd, in.y_n, 0.7, true, chunk);
    EXPECT_LE(MaxAbsDiff(got.logprobs_n, ref.logprobs_n), 1e-5) << "chunk " << chunk;
    EXPECT_LE(MaxAbsDiff(got.entropy_n, ref.entropy_n), 1e-5) << "chunk " << chunk;
  }
}

TEST(ChunkedLogProbs, GradientsMatchAutogradThroughFullLogits) {
  for (double temperature : {1.0, 0.6}) {
    Inputs in = MakeInputs(23, 12, 97, 2);
    at::Tensor g_lp = at::randn({23}), g_ent = at::randn({23});
    TokenLogProbs ref = ReferenceTokenLogProbs(in.h_nd, in.w_vd, in.y_n, temperature);
    ((ref.logprobs_n * g_lp).sum() + (ref.entropy_n * g_ent).sum()).backward();
    at::Tensor ref_gh = in.h_nd.grad().clone(), ref_gw = in.w_vd.grad().clone();
    in.h_nd.mutable_grad().zero_();
    in.w_vd.mutable_grad().zero_();
    TokenLogProbs got = ComputeTokenLogProbs(in.h_nd, in.w_vd, in.y_n, temperature, true, 7);
    ((got.logprobs_n * g_lp).sum() + (got.entropy_n * g_ent).sum()).backward();
    EXPECT_LE(MaxAbsDiff(in.h_nd.grad(), ref_gh), 1e-5) << "T=" << temperature;
    EXPECT_LE(MaxAbsDiff(in.w_vd.grad(), ref_gw), 1e-5) << "T=" << temperature;
  }
}

TEST(ChunkedLogProbs, LogProbOnlyGradientIgnoresEntropy) {
  Inputs in = MakeInputs(9, 8, 50, 3);
  ReferenceTokenLogProbs(in.h_nd, in.w_vd, in.y_n, 1.0).logprobs_n.sum().backward();
  at::Tensor ref_gh = in.h_nd.grad().clone();
  in.h_nd.mutable_grad().zero_();
  ComputeTokenLogProbs(in.h_nd, in.w_vd, in.y_n, 1.0, false, 4).logprobs_n.sum().backward();
  EXPECT_LE(MaxAbsDiff(in.h_nd.grad(), ref_gh), 1e-5);
}

// The GRPO loss computes entropies for its statistics but takes the
// gradient of the log-probs alone (and an entropy bonus the reverse): each
// output that reaches no loss gets no gradient terms (the fast path).
TEST(ChunkedLogProbs, GradientOfOneOutputWhenTheOtherReachesNoLoss) {
  for (double temperature : {1.0, 0.6}) {
    for (bool through_logp : {true, false}) {
      Inputs in = MakeInputs(23, 12, 97, 5);
      at::Tensor g_n = at::randn({23});
      TokenLogProbs ref = ReferenceTokenLogProbs(in.h_nd, in.w_vd, in.y_n, temperature);
      ((through_logp ? ref.logprobs_n : ref.entropy_n) * g_n).sum().backward();
      at::Tensor ref_gh = in.h_nd.grad().clone(), ref_gw = in.w_vd.grad().clone();
      in.h_nd.mutable_grad().zero_();
      in.w_vd.mutable_grad().zero_();
      TokenLogProbs got = ComputeTokenLogProbs(in.h_nd, in.w_vd, in.y_n, temperature, true, 7);
      ((through_logp ? got.logprobs_n : got.entropy_n) * g_n).sum().backward();
      EXPECT_LE(MaxAbsDiff(in.h_nd.grad(), ref_gh), 1e-5) << "T=" << temperature << " logp " << through_logp;
      EXPECT_LE(MaxAbsDiff(in.w_vd.grad(), ref_gw), 1e-5) << "T=" << temperature << " logp " << through_logp;
    }
  }
}

TEST(ChunkedLogProbs, Bf16InputsGiveFp32OutputsCloseToFp32) {
  Inputs in = MakeInputs(16, 32, 64, 4);
  TokenLogProbs f32 = ComputeTokenLogProbs(in.h_nd.detach(), in.w_vd.detach(), in.y_n, 1.0);
  TokenLogProbs b16 = ComputeTokenLogProbs(in.h_nd.detach().to(at::kBFloat16),
                                           in.w_vd.detach().to(at::kBFloat16), in.y_n, 1.0);
  EXPECT_EQ(b16.logprobs_n.scalar_type(), at::kFloat);
  EXPECT_LE(MaxAbsDiff(b16.logprobs_n, f32.logprobs_n), 0.1);
}

}  // namespace
}  // namespace moerl
