// The training step's hand-written autograd functions against the plain
// composite ops they replace, values and gradients: block-causal attention
// vs scaled_dot_product_attention, the fused chunked LM-head cross-entropy vs
// full log-softmax, and the fused-backward RMSNorm vs the same math in fp64.
// (GroupedSwiGlu is checked against the per-expert reference in moe_test.)
#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/scaled_dot_product_attention.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "trainer/model/block_causal_attention.h"
#include "trainer/model/lm_loss.h"
#include "trainer/model/primitives.h"

namespace moerl {
namespace {

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Max |a - b| over max |b| (the oracle test's relative gradient measure),
// floored so that exactly-zero gradients (one key: softmax has none) compare
// absolutely.
double RelDiff(const at::Tensor& a, const at::Tensor& b) {
  return MaxAbsDiff(a, b) / std::max(b.abs().max().item<double>(), 1e-2);
}

at::Tensor Leaf(at::Tensor t) { return t.set_requires_grad(true); }

struct AttentionCase {
  int64_t batch, len, heads, kv, block;
};

class BlockCausalAttentionTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(BlockCausalAttentionTest, MatchesSdpaCausalInValuesAndGradients) {
  const AttentionCase c = GetParam();
  const int64_t d = 8;
  at::manual_seed(3);
  at::Tensor q = Leaf(at::randn({c.batch, c.len, c.heads, d}));
  at::Tensor k = Leaf(at::randn({c.batch, c.len, c.kv, d}));
  at::Tensor v = Leaf(at::randn({c.batch, c.len, c.kv, d}));
  at::Tensor probe = at::randn({c.batch, c.len, c.heads, d});
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));

  at::Tensor got = BlockCausalAttention(q, k, v, scale, c.block);
  (got * probe).sum().backward();
  std::vector<at::Tensor> got_grads = {q.grad().clone(), k.grad().clone(), v.grad().clone()};
  for (at::Tensor* t : {&q, &k, &v}) t->mutable_grad() = at::Tensor();

  const int64_t rep = c.heads / c.kv;  // [B, L, h, d] -> [B, h, L, d], KV heads repeated
  at::Tensor want = at::scaled_dot_product_attention(
                        q.transpose(1, 2), k.transpose(1, 2).repeat_interleave(rep, 1),
                        v.transpose(1, 2).repeat_interleave(rep, 1), {}, 0.0, /*is_causal=*/true, scale)
                        .transpose(1, 2);
  (want * probe).sum().backward();
  EXPECT_LE(MaxAbsDiff(got, want), 1e-5) << "max |out - sdpa|";
  const char* names[] = {"dq", "dk", "dv"};
  const at::Tensor want_grads[] = {q.grad(), k.grad(), v.grad()};
  for (int i = 0; i < 3; ++i) {
    EXPECT_LE(RelDiff(got_grads[i], want_grads[i]), 1e-5) << names[i] << " relative difference";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, BlockCausalAttentionTest,
                         ::testing::Values(AttentionCase{2, 37, 4, 2, 16},   // ragged last block, GQA
                                           AttentionCase{3, 32, 2, 2, 8},    // exact blocks, MHA
                                           AttentionCase{1, 5, 4, 1, 128},   // one block, MQA
                                           AttentionCase{1, 1, 2, 1, 4}));   // single token

TEST(LinearCrossEntropyMean, MatchesFullLogSoftmaxForEveryChunkSize) {
  at::manual_seed(5);
  const int64_t n = 37, d = 16, v = 301;
  at::Tensor h = Leaf(at::randn({n, d}));
  at::Tensor w = Leaf(at::randn({v, d}) * 0.3);
  at::Tensor y = at::randint(v, {n});
  at::Tensor want = -at::linear(h, w).log_softmax(-1).gather(1, y.unsqueeze(1)).mean();
  (want * 3.0).backward();  // a non-unit upstream gradient
  at::Tensor want_dh = h.grad().clone(), want_dw = w.grad().clone();
  for (int64_t chunk : {1, 8, 37, 1000}) {
    h.mutable_grad() = at::Tensor();
    w.mutable_grad() = at::Tensor();
    at::Tensor got = LinearCrossEntropyMean(h, w, y, chunk);
    (got * 3.0).backward();
    EXPECT_LE(MaxAbsDiff(got, want), 1e-5) << "chunk " << chunk;
    EXPECT_LE(RelDiff(h.grad(), want_dh), 1e-5) << "dh, chunk " << chunk;
    EXPECT_LE(RelDiff(w.grad(), want_dw), 1e-5) << "dw, chunk " << chunk;
  }
}

TEST(LinearCrossEntropyMean, NeedsNoGradientWithoutGradMode) {
  at::NoGradGuard no_grad;
  at::Tensor loss = LinearCrossEntropyMean(at::randn({4, 3}), at::randn({5, 3}), at::randint(5, {4}));
  EXPECT_FALSE(loss.requires_grad());
  EXPECT_EQ(loss.dim(), 0);
}

TEST(RmsNorm, Fp32FusedBackwardMatchesFp64Composite) {
  at::manual_seed(7);
  at::Tensor x = Leaf(at::randn({6, 3, 16}));
  at::Tensor w = Leaf(at::randn({16}));
  at::Tensor probe = at::randn({6, 3, 16});
  at::Tensor got = RmsNorm(x, w, 1e-6);
  (got * probe).sum().backward();
  at::Tensor x64 = Leaf(x.detach().to(at::kDouble)), w64 = Leaf(w.detach().to(at::kDouble));
  at::Tensor want = w64 * (x64 * (x64.pow(2).mean({-1}, true) + 1e-6).rsqrt());
  (want * probe.to(at::kDouble)).sum().backward();
  EXPECT_LE(MaxAbsDiff(got, want), 1e-5);
  EXPECT_LE(RelDiff(x.grad(), x64.grad()), 1e-5) << "dx";
  EXPECT_LE(RelDiff(w.grad(), w64.grad()), 1e-5) << "dw";
}

}  // namespace
}  // namespace moerl
