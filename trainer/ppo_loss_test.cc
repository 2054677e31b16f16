// Hand-computed cases for PpoActorLoss: HEAD's decoupled-loss semantics, the
// TIS / MIS / IcePop mismatch corrections (not in AReaL, so no oracle), the
// statistics' bookkeeping, config validation and bad shapes. The comparison
// with AReaL itself is //trainer:areal_oracle_test.
#include "trainer/ppo_loss.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace moerl {
namespace {

at::Tensor F(std::vector<float> v) { return at::tensor(v); }

// One sequence; lp = prox (PPO ratio 1, never clipped), A = 1, so each valid
// token's L is -1 times whatever weight the correction applies.
PpoLossInput RatioInput(const std::vector<float>& behave_ratio) {
  const int64_t n = static_cast<int64_t>(behave_ratio.size());
  PpoLossInput in;
  in.behave_logp_n = at::zeros({n}) - 1.0;
  in.prox_logp_n = in.behave_logp_n + F(behave_ratio).log();
  in.logp_n = in.prox_logp_n.clone().requires_grad_(true);
  in.advantages_n = at::zeros({n}) + 1.0;
  in.loss_mask_n = at::zeros({n}) + 1.0;
  in.seq_lens = {n};
  return in;
}

PpoLossConfig Mismatch(const std::string& kind, const std::string& level = "token") {
  PpoLossConfig c;
  c.mismatch.kind = kind;
  c.mismatch.level = level;
  return c;
}

TEST(PpoActorLoss, DecoupledWithoutRejectionSamplingIgnoresBehaviourWeight) {
  // HEAD: pi_prox / pi_behave = 4 is not applied when rejection_sampling is unset.
  PpoLossInput in = RatioInput({4.0f, 4.0f});
  PpoLossResult r = PpoActorLoss(in, PpoLossConfig());
  EXPECT_NEAR(r.loss_sum.item<float>(), -2.0f, 1e-6);
  EXPECT_EQ(r.n_valid_before, 2.0);
  EXPECT_EQ(r.stats.count("behave_imp_weight"), 0u);
}

TEST(PpoActorLoss, RejectedTokensStillCountInTheDenominator) {
  PpoLossInput in = RatioInput({4.0f, 1.0f});
  PpoLossConfig c;
  c.rejection_sampling = RejectionSamplingConfig();
  c.rejection_sampling->upper = 2.0;
  PpoLossResult r = PpoActorLoss(in, c);
  EXPECT_NEAR(r.loss_sum.item<float>(), -1.0f, 1e-6);  // token 0 rejected, token 1 weight 1
  EXPECT_EQ(r.n_valid_before, 2.0);
  EXPECT_DOUBLE_EQ(r.stats.at("rs_filtered_fraction").Mean(), 0.5);
  EXPECT_DOUBLE_EQ(r.stats.at("unclipped_behave_tokens").sum, 1.0);
}

TEST(PpoActorLoss, TokenTisTruncatesTheWeight) {
  PpoLossInput in = RatioInput({3.0f, 0.5f});
  PpoLossResult r = PpoActorLoss(in, Mismatch("tis"));  // cap 2
  EXPECT_NEAR(r.loss_sum.item<float>(), -2.5f, 1e-5);
  r.loss_sum.backward();
  // dL/dlp = -A * rho * w with rho = 1.
  EXPECT_TRUE(at::allclose(in.logp_n.grad(), F({-2.0f, -0.5f}), 1e-5, 1e-6)) << in.logp_n.grad();
  EXPECT_NEAR(r.stats.at("mismatch/tis_weight").sum, 2.5, 1e-5);
  EXPECT_NEAR(r.stats.at("mismatch/tis_weight").max, 2.0, 1e-6);
  EXPECT_NEAR(r.stats.at("mismatch/ratio").max, 3.0, 1e-5);
  EXPECT_EQ(r.stats.at("mismatch/masked_fraction").sum, 0.0);
}

TEST(PpoActorLoss, TokenMisMasksWeightsAboveTheCap) {
  PpoLossInput in = RatioInput({3.0f, 0.5f});
  PpoLossResult r = PpoActorLoss(in, Mismatch("mis"));  // cap 2
  EXPECT_NEAR(r.loss_sum.item<float>(), -0.5f, 1e-6);
  EXPECT_EQ(r.n_valid_before, 2.0);
  EXPECT_EQ(r.stats.at("mismatch/masked_fraction").sum, 1.0);
  EXPECT_EQ(r.stats.at("mismatch/masked_fraction").count, 2.0);
  EXPECT_NEAR(r.stats.at("mismatch/mis_weight").sum, 0.5, 1e-6);  // 0 for the masked token
}

TEST(PpoActorLoss, SequenceMisUsesTheGeometricMean) {
  // Sequence 0: ratios 3 and 0.5, geometric mean sqrt(1.5) < 2: kept, both weighted by it.
  // Sequence 1: ratios 4 and 4: masked as a whole.
  PpoLossInput in = RatioInput({3.0f, 0.5f, 4.0f, 4.0f});
  in.seq_lens = {2, 2};
  PpoLossResult r = PpoActorLoss(in, Mismatch("mis", "sequence"));
  EXPECT_NEAR(r.loss_sum.item<float>(), -2.0 * std::sqrt(1.5), 1e-5);
  EXPECT_EQ(r.stats.at("mismatch/masked_fraction").sum, 2.0);
}

TEST(PpoActorLoss, SequenceTisTruncatesTheGeometricMean) {
  PpoLossInput in = RatioInput({4.0f, 4.0f, 1.0f});
  in.seq_lens = {2, 1};
  PpoLossResult r = PpoActorLoss(in, Mismatch("tis", "sequence"));
  EXPECT_NEAR(r.loss_sum.item<float>(), -(2.0 + 2.0 + 1.0), 1e-5);
}

TEST(PpoActorLoss, IcePopMasksRatiosOutsideTheBand) {
  // [low, high] = [0.5, 2]: 3 and 0.25 leave, 0.5 and 1.5 stay with weight r (IcePop's M(k) = k).
  PpoLossInput in = RatioInput({3.0f, 0.5f, 1.5f, 0.25f});
  PpoLossResult r = PpoActorLoss(in, Mismatch("icepop"));
  EXPECT_NEAR(r.loss_sum.item<float>(), -2.0f, 1e-5);
  EXPECT_EQ(r.stats.at("mismatch/masked_fraction").sum, 2.0);
  EXPECT_EQ(r.n_valid_before, 4.0);
  // n_valid_tokens is the mask before any rejection or correction.
  EXPECT_EQ(r.stats.at("n_valid_tokens").sum, 4.0);
}

TEST(PpoActorLoss, ClippingAndDualClipByHand) {
  // Token 0: A = 1, rho = e^0.5 > 1.2: clipped, L = -1.2, no gradient.
  // Token 1: A = -1, rho = e^1.5 = 4.48 > c_clip = 3: dual-clipped, L = 3.
  PpoLossInput in;
  in.prox_logp_n = F({-1.0f, -1.0f});
  in.behave_logp_n = in.prox_logp_n.clone();
  in.logp_n = F({-0.5f, 0.5f}).requires_grad_(true);
  in.advantages_n = F({1.0f, -1.0f});
  in.loss_mask_n = F({1.0f, 1.0f});
  in.seq_lens = {2};
  PpoLossConfig c;
  c.c_clip = 3.0;
  PpoLossResult r = PpoActorLoss(in, c);
  EXPECT_NEAR(r.loss_sum.item<float>(), -1.2f + 3.0f, 1e-6);
  r.loss_sum.backward();
  EXPECT_TRUE(at::allclose(in.logp_n.grad(), F({0.0f, 0.0f}))) << in.logp_n.grad();
  EXPECT_EQ(r.stats.at("clipped_tokens").sum, 1.0);
  EXPECT_EQ(r.stats.at("dual_clipped_tokens").sum, 1.0);
  EXPECT_EQ(r.stats.at("n_tokens").sum, 2.0);
  EXPECT_NEAR(r.stats.at("clipped_new_logp").Mean(), -0.5, 1e-6);
}

TEST(StatAccumulator, MergesMicroBatches) {
  StatAccumulator a, b;
  a.Add(1.0);
  a.Add(3.0);
  b.AddMany(10.0, 2.0, -1.0, 11.0);
  a.Merge(b);
  EXPECT_DOUBLE_EQ(a.Mean(), 14.0 / 4.0);
  EXPECT_DOUBLE_EQ(a.min, -1.0);
  EXPECT_DOUBLE_EQ(a.max, 11.0);
  EXPECT_TRUE(StatAccumulator().empty());
  EXPECT_TRUE(std::isnan(StatAccumulator().Mean()));
}

TEST(ValidatePpoLossConfig, RejectsWhatArealRejects) {
  PpoLossConfig c;
  c.c_clip = 1.0;
  EXPECT_EQ(ValidatePpoLossConfig(c).code(), absl::StatusCode::kInvalidArgument);
  c = PpoLossConfig();
  c.rejection_sampling = RejectionSamplingConfig();
  c.rejection_sampling->metric = "kl_k2";
  c.rejection_sampling->action = "clamp";
  EXPECT_NE(ValidatePpoLossConfig(c).message().find("actor.rejection_sampling.action"),
            std::string::npos);
  c.rejection_sampling = RejectionSamplingConfig();
  c.rejection_sampling->upper = 0.9;  // ratio needs upper > 1
  EXPECT_EQ(ValidatePpoLossConfig(c).code(), absl::StatusCode::kInvalidArgument);
  c = PpoLossConfig();
  c.importance_sampling_level = "group";
  EXPECT_EQ(ValidatePpoLossConfig(c).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidatePpoLossConfig(Mismatch("xis")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidatePpoLossConfig(Mismatch("icepop", "sequence")).ok());
}

TEST(PpoActorLossDeathTest, BadShapesAbort) {
  testing::FLAGS_gtest_death_test_style = "threadsafe";
  PpoLossInput in = RatioInput({1.0f, 1.0f});
  in.seq_lens = {3};
  EXPECT_DEATH(PpoActorLoss(in, PpoLossConfig()), "seq_lens sum to 3");
  in = RatioInput({1.0f, 1.0f});
  in.advantages_n = at::zeros({3});
  EXPECT_DEATH(PpoActorLoss(in, PpoLossConfig()), "every input must be");
}

}  // namespace
}  // namespace moerl
