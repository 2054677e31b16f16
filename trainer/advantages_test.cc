// Hand-computed cases for Normalize and ComputeAdvantages, and their errors.
// (The comparison with AReaL itself is //trainer:areal_oracle_test.)
#include "trainer/advantages.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace moerl {
namespace {

at::Tensor F(std::vector<float> v) { return at::tensor(v); }

// B rows of width L: prompt of 2 tokens, then `completion` tokens.
AdvantageBatch Batch(std::vector<float> rewards, int64_t completion, int64_t L) {
  const int64_t B = static_cast<int64_t>(rewards.size());
  AdvantageBatch b;
  b.rewards_b = F(rewards);
  b.loss_mask_bl = at::zeros({B, L});
  b.loss_mask_bl.narrow(1, 2, completion).fill_(1.0);
  b.behave_logp_bl = b.loss_mask_bl * -0.5;
  b.seqlens_b = at::full({B}, 2 + completion, at::kLong);
  return b;
}

AdvantageConfig Gsm8k(int64_t group_size) {
  AdvantageConfig c;
  c.reward_bias = -0.5;
  c.reward_scaling = 10.0;
  c.reward_norm = NormConfig{"group", "group"};
  c.reward_norm->group_size = group_size;
  return c;
}

TEST(Normalize, GroupOfFourIsUnbiasedZScore) {
  // r1 = (r - 0.5) * 10 = [5, -5, -5, 5]: mean 0, unbiased std sqrt(4 * 25 / 3).
  NormConfig c{"group", "group"};
  c.group_size = 4;
  const at::Tensor out = Normalize(F({5, -5, -5, 5}), at::Tensor(), c);
  const float want = static_cast<float>(5.0 / (std::sqrt(100.0 / 3.0) + 1e-5));
  EXPECT_TRUE(at::allclose(out, F({want, -want, -want, want}), 1e-6, 1e-6)) << out;
}

TEST(Normalize, GroupWithEqualRewardsGivesZero) {
  NormConfig c{"group", "group"};
  c.group_size = 2;
  const at::Tensor out = Normalize(F({3, 3, 1, -1}), at::Tensor(), c);
  EXPECT_EQ(out[0].item<float>(), 0.0f);
  EXPECT_EQ(out[1].item<float>(), 0.0f);
}

TEST(Normalize, LeaveOneOutMeanWithoutStdIsRloo) {
  // mean_i = (S - x_i) / (n - 1), S = 12: [11/3, 10/3, 3, 2]; std_level null: no scaling.
  NormConfig c{"batch", ""};
  c.mean_leave1out = true;
  const at::Tensor out = Normalize(F({1, 2, 3, 6}), at::Tensor(), c);
  EXPECT_TRUE(at::allclose(out, F({1 - 11.f / 3, 2 - 10.f / 3, 0, 4}), 1e-6, 1e-6)) << out;
}

TEST(Normalize, MaskedEntriesAreZeroAndIgnored) {
  NormConfig c{"batch", "batch"};
  c.std_unbiased = false;
  // Valid: 1 and 3 -> mean 2, biased std 1.
  const at::Tensor out = Normalize(F({1, 100, 3, -7}), F({1, 0, 1, 0}), c);
  EXPECT_TRUE(at::allclose(out, F({-1 / (1 + 1e-5f), 0, 1 / (1 + 1e-5f), 0}), 1e-6, 1e-6)) << out;
}

TEST(ComputeAdvantages, Gsm8kGrpoGivesEveryCompletionTokenItsGroupScore) {
  const int64_t L = 7;
  auto adv = ComputeAdvantages(Batch({1, 0, 0, 1, 1, 1, 1, 1}, 3, L), Gsm8k(4));
  ASSERT_TRUE(adv.ok()) << adv.status();
  const float a = static_cast<float>(5.0 / (std::sqrt(100.0 / 3.0) + 1e-5));
  const std::vector<float> want = {a, -a, -a, a, 0, 0, 0, 0};
  for (int64_t b = 0; b < 8; ++b) {
    for (int64_t t = 0; t < L; ++t) {
      // Rolled: positions 1..3 predict the completion tokens 2..4; masked
      // positions carry the running GAE value (so position 0 has it too).
      const bool completion = t >= 1 && t <= 3;
      EXPECT_NEAR(adv->advantages_bl[b][t].item<float>(), t <= 3 ? want[b] : 0.0f, 1e-6)
          << "row " << b << " position " << t;
      EXPECT_EQ(adv->loss_mask_bl[b][t].item<float>(), completion ? 1.0f : 0.0f);
    }
    // The reward sits at len - 2 = 3, the position predicting the last token.
    EXPECT_NEAR(adv->tot_rewards_bl[b][3].item<float>(), want[b], 1e-6);
  }
  EXPECT_NEAR(adv->shaped_rewards_b[0].item<float>(), a, 1e-6);
}

TEST(ComputeAdvantages, MaskNoEosWithZeroDropsTheReward) {
  AdvantageBatch batch = Batch({1, 1}, 3, 5);
  batch.no_eos_b = at::tensor(std::vector<int64_t>{0, 1}).to(at::kBool);
  AdvantageConfig c;
  c.mask_no_eos_with_zero = true;
  auto adv = ComputeAdvantages(batch, c);
  ASSERT_TRUE(adv.ok()) << adv.status();
  EXPECT_EQ(adv->advantages_bl[0][1].item<float>(), 1.0f);
  EXPECT_EQ(adv->advantages_bl[1][1].item<float>(), 0.0f);
}

TEST(ComputeAdvantages, DiscountAndLambdaDecayTowardsThePrompt) {
  AdvantageConfig c;
  c.discount = 0.5;
  c.gae_lambda = 0.5;
  auto adv = ComputeAdvantages(Batch({1}, 3, 5), c);
  ASSERT_TRUE(adv.ok()) << adv.status();
  // Reward 1 at position 3; gamma * lambda = 0.25 per step back; the masked
  // position 0 carries its successor's value.
  EXPECT_TRUE(at::allclose(adv->advantages_bl[0], F({0.0625f, 0.0625f, 0.25f, 1, 0}))) << adv->advantages_bl;
}

TEST(ComputeAdvantages, KlPenaltyIsARewardNotALoss) {
  AdvantageBatch batch = Batch({0}, 2, 4);
  batch.ref_logp_bl = batch.behave_logp_bl - 0.25;  // k1 = 0.25 on completion tokens
  AdvantageConfig c;
  c.kl_ctl = 0.1;
  auto adv = ComputeAdvantages(batch, c);
  ASSERT_TRUE(adv.ok()) << adv.status();
  // Rolled positions 1, 2 are completion; the entry at len - 1 = 3 is zeroed anyway.
  EXPECT_TRUE(at::allclose(adv->kl_rewards_bl[0], F({0, -0.025f, -0.025f, 0}))) << adv->kl_rewards_bl;
  EXPECT_TRUE(at::allclose(adv->advantages_bl[0], F({-0.05f, -0.05f, -0.025f, 0}))) << adv->advantages_bl;
}

TEST(ComputeAdvantages, RejectsPartialGroups) {
  auto adv = ComputeAdvantages(Batch({1, 0, 1}, 2, 5), Gsm8k(2));
  EXPECT_EQ(adv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(adv.status().message().find("group_size 2"), std::string::npos) << adv.status();
}

TEST(ComputeAdvantages, RejectsMismatchedShapes) {
  AdvantageBatch batch = Batch({1, 0}, 2, 5);
  batch.behave_logp_bl = at::zeros({2, 6});
  auto adv = ComputeAdvantages(batch, {});
  EXPECT_EQ(adv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(adv.status().message().find("behave_logp_bl"), std::string::npos) << adv.status();

  batch = Batch({1, 0}, 2, 5);
  batch.seqlens_b = at::full({2}, 6, at::kLong);
  EXPECT_EQ(ComputeAdvantages(batch, {}).status().code(), absl::StatusCode::kInvalidArgument);

  batch = Batch({1, 0}, 2, 5);
  batch.rewards_b = F({1, 0, 1});
  EXPECT_EQ(ComputeAdvantages(batch, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ComputeAdvantages, RejectsUnknownNames) {
  AdvantageConfig c;
  c.kl_estimator = "k4";
  EXPECT_EQ(ComputeAdvantages(Batch({1}, 2, 5), c).status().code(),
            absl::StatusCode::kInvalidArgument);
  c = AdvantageConfig();
  c.adv_norm = NormConfig{"token", "batch"};
  auto adv = ComputeAdvantages(Batch({1}, 2, 5), c);
  EXPECT_EQ(adv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(adv.status().message().find("actor.adv_norm"), std::string::npos) << adv.status();
}

}  // namespace
}  // namespace moerl
