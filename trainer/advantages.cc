#include "trainer/advantages.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/roll.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"

namespace moerl {
namespace {

constexpr auto kF64 = at::kDouble;

bool ValidLevel(const std::string& level) {
  return level.empty() || level == "batch" || level == "group";
}

// AReaL's Normalization._compute_mean over all of x (one batch or one group):
// float64, keepdim shape [1, ...] unless leave-one-out makes it per entry.
at::Tensor ComputeMean(const at::Tensor& x_in, const at::Tensor& mask_in, bool leave_one_out) {
  const at::Tensor x = x_in.to(kF64);
  at::Tensor x_masked, factor, x_sum;
  std::vector<int64_t> dims(x.dim());
  for (int64_t d = 0; d < x.dim(); ++d) dims[d] = d;
  at::Tensor mask;
  if (!mask_in.defined()) {
    factor = at::scalar_tensor(static_cast<double>(x.numel()), x.options());
    x_masked = x;
    x_sum = x.sum(dims, /*keepdim=*/true);
  } else {
    mask = mask_in.to(kF64);
    x_masked = x * mask;
    factor = mask.sum(dims, /*keepdim=*/true);
    x_sum = x_masked.sum(dims, /*keepdim=*/true);
  }
  const double n = factor.item<double>();
  if (leave_one_out) {
    if (n <= 1) return at::zeros_like(x_sum);
    if (!mask.defined()) return (x_sum.expand_as(x) - x) / (factor - 1);
    const at::Tensor loo_mean = (x_sum.expand_as(x) - x_masked) / at::clamp(factor - mask, 1.0);
    return at::where(mask > 0, loo_mean, (x_sum / factor).expand_as(x));
  }
  if (n == 0) return at::zeros_like(x_sum);
  return x_sum / factor;
}

// AReaL's Normalization._compute_std around a given (broadcastable) mean.
at::Tensor ComputeStd(const at::Tensor& x_in, const at::Tensor& mask_in, const at::Tensor& mean_in,
                      bool unbiased) {
  const at::Tensor x = x_in.to(kF64);
  const at::Tensor mean = mean_in.to(kF64);
  std::vector<int64_t> dims(x.dim());
  for (int64_t d = 0; d < x.dim(); ++d) dims[d] = d;
  at::Tensor factor, sum_sq;
  if (!mask_in.defined()) {
    factor = at::scalar_tensor(static_cast<double>(x.numel()), x.options());
    sum_sq = (x - mean).square().sum(dims, /*keepdim=*/true);
  } else {
    const at::Tensor mask = mask_in.to(kF64);
    factor = mask.sum(dims, /*keepdim=*/true);
    sum_sq = (x * mask - mean * mask).square().sum(dims, /*keepdim=*/true);
  }
  const double n = factor.item<double>();
  if (unbiased) {
    if (n <= 1) return at::ones_like(sum_sq);
    return (sum_sq / (factor - 1)).sqrt();
  }
  if (n == 0) return at::ones_like(sum_sq);
  return (sum_sq / factor).sqrt();
}

at::Tensor Rows(const at::Tensor& t, int64_t start, int64_t size) {
  return t.defined() ? t.narrow(0, start, size) : t;
}

}  // namespace

absl::Status ValidateNormConfig(const NormConfig& config, const std::string& key) {
  if (!ValidLevel(config.mean_level) || !ValidLevel(config.std_level)) {
    return absl::InvalidArgumentError(absl::StrCat(
        key, ".mean_level / std_level must be \"batch\", \"group\" or null; got \"",
        config.mean_level, "\" / \"", config.std_level, "\""));
  }
  if ((config.mean_level == "group" || config.std_level == "group") && config.group_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        key, ".group_size must be >= 1 with a group level; got ", config.group_size));
  }
  return absl::OkStatus();
}

at::Tensor Normalize(const at::Tensor& x_in, const at::Tensor& mask_in, const NormConfig& config) {
  MOERL_CHECK(ValidateNormConfig(config, "norm").ok())
      << ValidateNormConfig(config, "norm").message();
  const at::Tensor x = x_in.to(at::kFloat);
  const at::Tensor mask = mask_in.defined() ? mask_in.to(at::kFloat) : mask_in;
  if (mask.defined()) MOERL_CHECK(mask.sizes() == x.sizes()) << "Normalize: mask shape differs from x";
  if (mask.defined() && mask.sum().item<double>() == 0) return x;
  const int64_t bs = x.size(0);
  const int64_t gs = config.group_size;

  // Step 1: the mean, float64 at batch level; group level stores it in x's fp32.
  at::Tensor mean;
  if (config.mean_level == "batch") {
    mean = ComputeMean(x, mask, config.mean_leave1out).expand_as(x);
  } else if (config.mean_level == "group") {
    mean = at::zeros_like(x);
    for (int64_t i = 0; i < bs / gs; ++i) {
      const at::Tensor xx = x.narrow(0, i * gs, gs);
      at::Tensor group_mean;
      if (gs == 1 && config.mean_leave1out) {
        group_mean = at::zeros_like(xx.narrow(0, 0, 1), kF64);
      } else {
        group_mean = ComputeMean(xx, Rows(mask, i * gs, gs), config.mean_leave1out);
      }
      mean.narrow(0, i * gs, gs).copy_(group_mean.expand_as(xx));
    }
  } else {
    mean = at::zeros_like(x);
  }
  at::Tensor x_centered = x - mean;
  if (mask.defined()) x_centered = x_centered * mask;

  // Step 2: the std, the same way.
  at::Tensor std;
  double eps = config.eps;
  if (config.std_level == "batch") {
    std = ComputeStd(x, mask, mean, config.std_unbiased).expand_as(x);
  } else if (config.std_level == "group") {
    std = at::zeros_like(x);
    for (int64_t i = 0; i < bs / gs; ++i) {
      const at::Tensor xx = x.narrow(0, i * gs, gs);
      at::Tensor group_std;
      if (gs == 1 && config.std_unbiased) {
        group_std = at::ones_like(xx.narrow(0, 0, 1), kF64);
      } else {
        group_std = ComputeStd(xx, Rows(mask, i * gs, gs), mean.narrow(0, i * gs, gs),
                               config.std_unbiased);
      }
      std.narrow(0, i * gs, gs).copy_(group_std.expand_as(xx));
    }
  } else {
    std = at::ones_like(x);
    eps = 0.0;
  }
  return (x_centered / (std + eps)).to(at::kFloat);
}

namespace {

absl::Status CheckShape(const at::Tensor& t, at::IntArrayRef want, const char* name) {
  if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat(name, " is undefined"));
  if (t.sizes() != want) {
    return absl::InvalidArgumentError(absl::StrCat(name, " has shape ", c10::str(t.sizes()),
                                                   ", expected ", c10::str(want)));
  }
  return absl::OkStatus();
}

absl::Status CheckGroups(const std::optional<NormConfig>& norm, int64_t batch, const char* key) {
  if (!norm) return absl::OkStatus();
  MOERL_RETURN_IF_ERROR(ValidateNormConfig(*norm, key));
  if ((norm->mean_level == "group" || norm->std_level == "group") &&
      batch % norm->group_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        key, ": batch of ", batch, " sequences is not whole groups of group_size ",
        norm->group_size));
  }
  return absl::OkStatus();
}

// KLEstimator (clamped to [-10, 10]) of log-probs lp against the base lp_ref.
at::Tensor ApproxKl(const at::Tensor& lp, const at::Tensor& lp_ref, const std::string& estimator) {
  at::Tensor d = lp - lp_ref;
  if (estimator == "k2") d = d.square() / 2.0;
  if (estimator == "k3") {
    d = -d;
    d = d.exp() - 1 - d;
  }
  return at::clamp(d, -10.0, 10.0);
}

}  // namespace

absl::StatusOr<Advantages> ComputeAdvantages(const AdvantageBatch& batch,
                                             const AdvantageConfig& config) {
  if (!batch.rewards_b.defined() || batch.rewards_b.dim() != 1) {
    return absl::InvalidArgumentError("ComputeAdvantages: rewards_b must be a defined [B] tensor");
  }
  if (!batch.loss_mask_bl.defined() || batch.loss_mask_bl.dim() != 2) {
    return absl::InvalidArgumentError("ComputeAdvantages: loss_mask_bl must be a defined [B, L] tensor");
  }
  const int64_t B = batch.rewards_b.size(0);
  const int64_t L = batch.loss_mask_bl.size(1);
  MOERL_RETURN_IF_ERROR(CheckShape(batch.loss_mask_bl, {B, L}, "loss_mask_bl"));
  MOERL_RETURN_IF_ERROR(CheckShape(batch.behave_logp_bl, {B, L}, "behave_logp_bl"));
  if (batch.ref_logp_bl.defined()) {
    MOERL_RETURN_IF_ERROR(CheckShape(batch.ref_logp_bl, {B, L}, "ref_logp_bl"));
  }
  MOERL_RETURN_IF_ERROR(CheckShape(batch.seqlens_b, {B}, "seqlens_b"));
  if (batch.no_eos_b.defined()) MOERL_RETURN_IF_ERROR(CheckShape(batch.no_eos_b, {B}, "no_eos_b"));
  if (L < 1) return absl::InvalidArgumentError("ComputeAdvantages: padded width L must be >= 1");
  if (config.kl_estimator != "k1" && config.kl_estimator != "k2" && config.kl_estimator != "k3") {
    return absl::InvalidArgumentError(absl::StrCat(
        "actor.kl_estimator must be k1, k2 or k3; got \"", config.kl_estimator, "\""));
  }
  MOERL_RETURN_IF_ERROR(CheckGroups(config.reward_norm, B, "actor.reward_norm"));
  MOERL_RETURN_IF_ERROR(CheckGroups(config.adv_norm, B, "actor.adv_norm"));

  const at::Device device = batch.loss_mask_bl.device();
  const at::Tensor seqlens = batch.seqlens_b.to(at::kCPU).to(at::kLong).contiguous();
  const int64_t* len = seqlens.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    if (len[b] < 1 || len[b] > L) {
      return absl::InvalidArgumentError(absl::StrCat("ComputeAdvantages: seqlens_b[", b, "] = ",
                                                     len[b], ", expected 1..", L));
    }
  }
  const at::Tensor no_eos =
      batch.no_eos_b.defined() ? batch.no_eos_b.to(at::kCPU).to(at::kBool).contiguous() : at::Tensor();

  // Rewards: bias, scale, clip, optional normalisation.
  const at::Tensor rewards = batch.rewards_b.to(at::kCPU).to(at::kFloat);
  at::Tensor score_b = at::clamp((rewards + config.reward_bias) * config.reward_scaling,
                                 -config.reward_clip, config.reward_clip);
  if (config.reward_norm) score_b = Normalize(score_b, at::Tensor(), *config.reward_norm);
  score_b = score_b.contiguous();

  // Rolled alignment: position i predicts token i + 1.
  const at::Tensor mask_bl =
      at::roll(batch.loss_mask_bl.to(at::kCPU).to(at::kFloat), {-1}, {-1}).contiguous();
  const at::Tensor old_logp_bl = at::roll(batch.behave_logp_bl.to(at::kCPU).to(at::kFloat), {-1}, {-1}) * mask_bl;
  const at::Tensor ref_logp_bl =
      batch.ref_logp_bl.defined()
          ? at::roll(batch.ref_logp_bl.to(at::kCPU).to(at::kFloat), {-1}, {-1}) * mask_bl
          : at::zeros_like(old_logp_bl);

  const at::Tensor kl_rewards_bl =
      -config.kl_ctl * ApproxKl(old_logp_bl, ref_logp_bl, config.kl_estimator);
  at::Tensor tot_rewards_bl = kl_rewards_bl.clone().contiguous();
  float* rew = tot_rewards_bl.data_ptr<float>();
  const float* score = score_b.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    rew[b * L + len[b] - 1] = 0.0f;
    const bool zero = config.mask_no_eos_with_zero && no_eos.defined() && no_eos.data_ptr<bool>()[b];
    rew[b * L + std::max<int64_t>(len[b] - 2, 0)] += zero ? 0.0f : score[b];
  }

  // GAE with V = 0 (no critic): masked positions carry the running value.
  at::Tensor adv_bl = at::zeros_like(tot_rewards_bl);
  float* adv = adv_bl.data_ptr<float>();
  const float* m = mask_bl.data_ptr<float>();
  const float coef = static_cast<float>(config.discount * config.gae_lambda);
  for (int64_t b = 0; b < B; ++b) {
    float gae = 0.0f;
    for (int64_t t = L - 2; t >= 0; --t) {
      const float next = rew[b * L + t] + coef * gae;
      gae = gae * (1.0f - m[b * L + t]) + next * m[b * L + t];
      adv[b * L + t] = gae;
    }
  }
  if (config.adv_norm) adv_bl = Normalize(adv_bl, mask_bl, *config.adv_norm);

  Advantages out;
  out.advantages_bl = adv_bl.to(device);
  out.kl_rewards_bl = kl_rewards_bl.to(device);
  out.tot_rewards_bl = tot_rewards_bl.to(device);
  out.loss_mask_bl = mask_bl.to(device);
  out.behave_logp_bl = old_logp_bl.to(device);
  out.ref_logp_bl = ref_logp_bl.to(device);
  out.shaped_rewards_b = score_b.to(device);
  return out;
}

}  // namespace moerl
