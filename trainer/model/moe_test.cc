// The fast expert path (dispatcher + grouped GEMMs) against the per-expert
// reference loop, values and gradients; and routing facts.
#include "trainer/model/moe.h"

#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/tensor.h>

#include <cmath>

#include "gtest/gtest.h"

namespace moerl {
namespace {

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(Router, RenormalisesTopKWeightsToOne) {
  at::manual_seed(0);
  Routing r = Route(at::randn({10, 8}), at::randn({6, 8}), 3, /*norm_topk_prob=*/true);
  EXPECT_LE(MaxAbsDiff(r.topk_weights_tk.sum(-1), at::ones_like(r.topk_weights_tk.sum(-1))), 1e-6);
  Routing raw = Route(at::randn({10, 8}), at::randn({6, 8}), 3, /*norm_topk_prob=*/false);
  EXPECT_LT(raw.topk_weights_tk.sum(-1).max().item<double>(), 1.0);
}

TEST(LocalTokenDispatcher, GroupsCopiesByExpertStablyAndCounts) {
  Routing r;
  r.topk_ids_tk = at::tensor(std::vector<int64_t>{2, 0, 0, 1, 2, 1}).reshape({3, 2});
  r.topk_weights_tk = at::ones({3, 2});
  at::Tensor x_td = at::tensor(std::vector<float>{10, 20, 30}).reshape({3, 1});
  LocalTokenDispatcher d;
  DispatchedTokens out = d.Dispatch(x_td, r, 3);
  EXPECT_EQ(out.tokens_per_expert, (std::vector<int64_t>{2, 2, 2}));
  // expert 0: tokens 0, 1; expert 1: tokens 1, 2; expert 2: tokens 0, 2.
  at::Tensor want = at::tensor(std::vector<int64_t>{0, 1, 1, 2, 0, 2});
  EXPECT_TRUE(out.source_token_n.equal(want));
  at::Tensor y = d.Combine(out.tokens_nd, out);  // identity experts, unit weights
  EXPECT_TRUE(y.equal(x_td * 2));
}

TEST(GroupedExperts, MatchesReferenceLoopInValuesAndGradients) {
  at::manual_seed(1);
  const int64_t t = 40, d = 16, e = 6, f = 8, k = 2;
  at::Tensor x_td = at::randn({t, d}).set_requires_grad(true);
  at::Tensor gate_ed = at::randn({e, d}).set_requires_grad(true);
  at::Tensor gate_up = (at::randn({e, 2 * f, d}) * 0.2).set_requires_grad(true);
  at::Tensor down = (at::randn({e, d, f}) * 0.2).set_requires_grad(true);
  at::Tensor probe_td = at::randn({t, d});

  auto run = [&](bool grouped) {
    for (at::Tensor* p : {&x_td, &gate_ed, &gate_up, &down}) {
      if (p->grad().defined()) p->mutable_grad().zero_();
    }
    Routing r = Route(x_td, gate_ed, k, true);
    at::Tensor y_td;
    if (grouped) {
      LocalTokenDispatcher disp;
      DispatchedTokens dt = disp.Dispatch(x_td, r, e);
      y_td = disp.Combine(GroupedExperts(dt.tokens_nd, dt.tokens_per_expert, gate_up, down), dt);
    } else {
      y_td = ExpertLoopReference(x_td, r, gate_up, down);
    }
    (y_td * probe_td).sum().backward();
    return std::vector<at::Tensor>{y_td.detach(), x_td.grad().clone(), gate_ed.grad().clone(),
                                   gate_up.grad().clone(), down.grad().clone()};
  };
  auto fast = run(true);
  auto ref = run(false);
  const char* names[] = {"y", "dx", "dgate", "dgate_up", "ddown"};
  for (size_t i = 0; i < fast.size(); ++i) {
    EXPECT_LE(MaxAbsDiff(fast[i], ref[i]), 1e-5) << names[i];
  }
}

TEST(GroupedExperts, ExpertsWithNoTokensAreSkipped) {
  at::Tensor tokens = at::randn({3, 4});
  at::Tensor out = GroupedExperts(tokens, {0, 3, 0}, at::randn({3, 6, 4}), at::randn({3, 4, 3}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 4}));
}

TEST(LoadBalancingLoss, UniformRoutingGivesTopK) {
  // Equal logits: P_e = 1/E; counts spread evenly -> aux = E * sum_e (k/E)(1/E) = k.
  at::Tensor logits = at::zeros({8, 4});
  // topk on ties picks the lowest ids: counts are all on experts 0,1 -> aux = 4 * (2*1*(1/4)) = 2.
  EXPECT_NEAR(LoadBalancingLoss({logits}, 2).item<double>(), 2.0, 1e-6);
}

TEST(RouterZLoss, EqualLogitsGiveLogESquaredPerLayer) {
  at::Tensor logits = at::zeros({5, 8});
  const double per_layer = std::log(8.0) * std::log(8.0);
  EXPECT_NEAR(RouterZLoss({logits}).item<double>(), per_layer, 1e-5);
  EXPECT_NEAR(RouterZLoss({logits, logits}).item<double>(), 2 * per_layer, 1e-5);
}

}  // namespace
}  // namespace moerl
