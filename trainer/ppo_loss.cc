#include "trainer/ppo_loss.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/full.h>
#include <ATen/ops/maximum.h>
#include <ATen/ops/minimum.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/scatter_add.h>
#include <ATen/ops/scatter_reduce.h>
#include <ATen/ops/sign.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <limits>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace moerl {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kDefaultRsUpper = 5.0;  // AReaL's RejectionSamplingConfig.upper

// Sequence id of each token, and per-sequence reductions over the packed layout.
struct Segments {
  at::Tensor seq_idx_n;  // int64 [N]
  int64_t num_seqs = 0;

  at::Tensor Sum(const at::Tensor& values_n) const {
    return at::scatter_add(at::zeros({num_seqs}, values_n.options()), 0, seq_idx_n, values_n);
  }
  // Tokens of each sequence in `mask_n`, at least 1 (AReaL's clamp(min=1)), as float.
  at::Tensor ValidCount(const at::Tensor& mask_n) const {
    return Sum(mask_n.to(at::kFloat)).clamp_min(1.0);
  }
  at::Tensor Broadcast(const at::Tensor& per_seq) const { return per_seq.index_select(0, seq_idx_n); }
};

at::Tensor SanitizedLogRatio(const at::Tensor& prox, const at::Tensor& behave) {
  const at::Tensor log_ratio = prox.detach().to(at::kFloat) - behave.detach().to(at::kFloat);
  return at::where(log_ratio.isfinite(), log_ratio, 0.0);
}

at::Tensor InBounds(const at::Tensor& metric, const RejectionSamplingConfig& rs) {
  const double upper = rs.upper.value_or(kDefaultRsUpper);
  if (rs.lower) return (metric >= *rs.lower).logical_and(metric <= upper);
  return metric <= upper;
}

struct Rejection {
  at::Tensor mask_n;       // bool
  at::Tensor weight_n;     // fp32, 0 off the mask
  at::Tensor filtered_fraction;  // 0-dim
};

// AReaL's apply_rejection_sampling on the packed layout.
Rejection ApplyRejectionSampling(const at::Tensor& prox, const at::Tensor& behave,
                                 const at::Tensor& mask, const Segments& seg,
                                 const RejectionSamplingConfig& rs) {
  const at::Tensor log_ratio = SanitizedLogRatio(prox, behave);
  at::Tensor metric;
  if (rs.metric == "ratio") {
    metric = log_ratio.exp();
  } else {
    // KLEstimator._compute_approx_kl without clamp, on the raw difference.
    at::Tensor d = prox.detach().to(at::kFloat) - behave.detach().to(at::kFloat);
    if (rs.metric == "kl_k2") d = d.square() / 2.0;
    if (rs.metric == "kl_k3") {
      d = -d;
      d = d.exp() - 1 - d;
    }
    metric = d;
  }
  const bool log_agg = rs.metric == "ratio";
  at::Tensor weight = log_ratio.exp();
  at::Tensor original_weight = weight;
  at::Tensor in_bounds;
  const double clamp_lo = rs.lower.value_or(0.0);
  const double clamp_hi = rs.upper.value_or(kDefaultRsUpper);

  if (rs.level == "sequence") {
    const at::Tensor agg_values = log_agg ? log_ratio : metric;
    const at::Tensor masked_agg = at::where(mask, agg_values, 0.0);
    const at::Tensor valid_count = seg.ValidCount(mask);
    if (log_agg) {
      weight = seg.Broadcast((seg.Sum(masked_agg) / valid_count).exp());
      original_weight = weight;
    }
    at::Tensor seq_agg;
    if (rs.agg == "sum") {
      seq_agg = seg.Sum(masked_agg);
    } else if (rs.agg == "mean") {
      seq_agg = seg.Sum(masked_agg) / valid_count;
    } else {  // max; an all-masked sequence counts as in bounds (0)
      const at::Tensor for_max = agg_values.masked_fill(mask.logical_not(), -kInf);
      seq_agg = at::full({seg.num_seqs}, -kInf, agg_values.options())
                    .scatter_reduce(0, seg.seq_idx_n, for_max, "amax");
      const at::Tensor all_masked = seg.Sum(mask.to(at::kFloat)) == 0;
      seq_agg = at::where(all_masked, at::zeros_like(seq_agg), seq_agg);
    }
    const at::Tensor seq_metric = log_agg ? seq_agg.exp() : seq_agg;
    const at::Tensor seq_in_bounds = InBounds(seq_metric, rs);
    if (rs.action == "mask") {
      in_bounds = seg.Broadcast(seq_in_bounds);
    } else {
      const at::Tensor out_of_bounds = seg.Broadcast(seq_in_bounds.logical_not());
      weight = at::where(out_of_bounds, weight.clamp(clamp_lo, clamp_hi), weight);
    }
  } else if (rs.action == "mask") {
    in_bounds = InBounds(metric, rs);
  } else {
    weight = weight.clamp(clamp_lo, clamp_hi);
  }

  Rejection out;
  const at::Tensor total = mask.sum().to(at::kDouble);
  at::Tensor changed;
  if (rs.action == "mask") {
    out.mask_n = mask.logical_and(in_bounds);
    changed = mask.logical_and(in_bounds.logical_not()).sum().to(at::kDouble);
  } else {
    out.mask_n = mask;
    changed = mask.logical_and(original_weight != weight).sum().to(at::kDouble);
  }
  out.filtered_fraction = changed / total.clamp_min(1.0);
  out.weight_n = at::where(out.mask_n, weight, 0.0);
  return out;
}

struct Mismatch {
  at::Tensor keep_n;    // bool: the mask after the correction
  at::Tensor weight_n;  // fp32, 0 off keep_n
  at::Tensor ratio_n;   // fp32: r the correction judged by
};

Mismatch ApplyMismatchCorrection(const at::Tensor& prox, const at::Tensor& behave,
                                 const at::Tensor& mask, const Segments& seg,
                                 const MismatchCorrection& mc) {
  const at::Tensor log_ratio = SanitizedLogRatio(prox, behave);
  Mismatch out;
  if (mc.level == "sequence") {
    const at::Tensor seq_mean = seg.Sum(at::where(mask, log_ratio, 0.0)) / seg.ValidCount(mask);
    out.ratio_n = seg.Broadcast(seq_mean.exp());
  } else {
    out.ratio_n = log_ratio.exp();
  }
  const at::Tensor& r = out.ratio_n;
  at::Tensor weight = r;
  if (mc.kind == "tis") {
    out.keep_n = mask;
    weight = r.clamp_max(mc.cap);
  } else if (mc.kind == "mis") {
    out.keep_n = mask.logical_and(r <= mc.cap);
  } else {  // icepop
    out.keep_n = mask.logical_and(r >= mc.low).logical_and(r <= mc.high);
  }
  out.weight_n = at::where(out.keep_n, weight, 0.0);
  return out;
}

// Collects masked {sum, count, min, max} as 0-dim tensors and syncs them to
// the host once, at the end.
class StatCollector {
 public:
  // AReaL's stats_tracker.stat(name=values, denominator=mask).
  void Stat(const std::string& name, const at::Tensor& values, const at::Tensor& mask) {
    const at::Tensor v = values.detach().to(at::kFloat);
    names_.push_back(name);
    sums_.push_back(at::where(mask, v, 0.0).sum());
    counts_.push_back(mask.sum().to(at::kFloat));
    if (v.numel() == 0) {
      mins_.push_back(at::scalar_tensor(kInf, v.options()));
      maxs_.push_back(at::scalar_tensor(-kInf, v.options()));
    } else {
      mins_.push_back(at::where(mask, v, kInf).min());
      maxs_.push_back(at::where(mask, v, -kInf).max());
    }
  }
  // stats_tracker.denominator: sum = true entries, count = entries.
  void Denominator(const std::string& name, const at::Tensor& mask) {
    Stat(name, mask.to(at::kFloat), at::ones_like(mask, at::kBool));
  }
  // A per-call value (stats_tracker.scalar): sum = value, count = 1.
  void Scalar(const std::string& name, const at::Tensor& value) {
    const at::Tensor v = value.detach().to(at::kFloat).reshape({});
    Ratio(name, v, at::ones_like(v));
  }
  // sum = numerator, count = denominator (min/max unused: 0, 1).
  void Ratio(const std::string& name, const at::Tensor& numerator, const at::Tensor& denominator) {
    names_.push_back(name);
    sums_.push_back(numerator.to(at::kFloat).reshape({}));
    counts_.push_back(denominator.to(at::kFloat).reshape({}));
    mins_.push_back(numerator.to(at::kFloat).reshape({}));
    maxs_.push_back(numerator.to(at::kFloat).reshape({}));
  }

  std::map<std::string, StatAccumulator> Finish() {
    std::map<std::string, StatAccumulator> out;
    if (names_.empty()) return out;
    const at::Tensor all = at::stack({at::stack(sums_), at::stack(counts_), at::stack(mins_),
                                      at::stack(maxs_)})
                               .to(at::kCPU)
                               .to(at::kDouble)
                               .contiguous();  // [4, S]
    const double* p = all.data_ptr<double>();
    const size_t n = names_.size();
    for (size_t i = 0; i < n; ++i) {
      StatAccumulator acc;
      acc.sum = p[i];
      acc.count = p[n + i];
      acc.min = acc.count > 0 ? p[2 * n + i] : kInf;
      acc.max = acc.count > 0 ? p[3 * n + i] : -kInf;
      out[names_[i]] = acc;
    }
    return out;
  }

 private:
  std::vector<std::string> names_;
  std::vector<at::Tensor> sums_, counts_, mins_, maxs_;
};

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

}  // namespace

absl::Status ValidatePpoLossConfig(const PpoLossConfig& config) {
  if (!(config.eps_clip > 0)) return Invalid(absl::StrCat("actor.eps_clip must be > 0; got ", config.eps_clip));
  if (config.c_clip && !(*config.c_clip > 1.0)) {
    return Invalid(absl::StrCat("actor.c_clip must be > 1 (or null); got ", *config.c_clip));
  }
  if (config.importance_sampling_level != "token" && config.importance_sampling_level != "sequence") {
    return Invalid(absl::StrCat("actor.importance_sampling_level must be token or sequence; got \"",
                                config.importance_sampling_level, "\""));
  }
  if (config.rejection_sampling) {
    const RejectionSamplingConfig& rs = *config.rejection_sampling;
    const std::string k = "actor.rejection_sampling.";
    if (rs.level != "token" && rs.level != "sequence") {
      return Invalid(absl::StrCat(k, "level must be token or sequence; got \"", rs.level, "\""));
    }
    if (rs.action != "mask" && rs.action != "clamp") {
      return Invalid(absl::StrCat(k, "action must be mask or clamp; got \"", rs.action, "\""));
    }
    if (rs.metric != "ratio" && rs.metric != "kl_k1" && rs.metric != "kl_k2" && rs.metric != "kl_k3") {
      return Invalid(absl::StrCat(k, "metric must be ratio, kl_k1, kl_k2 or kl_k3; got \"", rs.metric, "\""));
    }
    if (rs.agg != "sum" && rs.agg != "mean" && rs.agg != "max") {
      return Invalid(absl::StrCat(k, "agg must be sum, mean or max; got \"", rs.agg, "\""));
    }
    const double upper = rs.upper.value_or(kDefaultRsUpper);
    if (rs.lower && *rs.lower > upper) {
      return Invalid(absl::StrCat(k, "lower (", *rs.lower, ") is greater than ", k, "upper (", upper, ")"));
    }
    if (rs.metric == "ratio" && upper <= 1.0) {
      return Invalid(absl::StrCat(k, "upper must be > 1 for metric ratio; got ", upper));
    }
    if (rs.metric == "ratio" && rs.lower && *rs.lower <= 0) {
      return Invalid(absl::StrCat(k, "lower must be > 0 for metric ratio; got ", *rs.lower));
    }
    if ((rs.metric == "kl_k2" || rs.metric == "kl_k3") && upper <= 0) {
      return Invalid(absl::StrCat(k, "upper must be > 0 for metric ", rs.metric, "; got ", upper));
    }
    if (rs.action == "clamp" && rs.metric != "ratio") {
      return Invalid(absl::StrCat(k, "action clamp needs metric ratio; got metric \"", rs.metric,
                                  "\" (use action mask for KL metrics)"));
    }
  }
  const MismatchCorrection& mc = config.mismatch;
  if (!mc.kind.empty()) {
    if (mc.kind != "tis" && mc.kind != "mis" && mc.kind != "icepop") {
      return Invalid(absl::StrCat("mismatch.kind must be tis, mis, icepop or empty; got \"", mc.kind, "\""));
    }
    if (mc.level != "token" && mc.level != "sequence") {
      return Invalid(absl::StrCat("mismatch.level must be token or sequence; got \"", mc.level, "\""));
    }
    if ((mc.kind == "tis" || mc.kind == "mis") && !(mc.cap > 0)) {
      return Invalid(absl::StrCat("mismatch.cap must be > 0; got ", mc.cap));
    }
    if (mc.kind == "icepop" && !(mc.low >= 0 && mc.low <= mc.high)) {
      return Invalid(absl::StrCat("mismatch.low/high must satisfy 0 <= low <= high; got ", mc.low,
                                  " / ", mc.high));
    }
  }
  return absl::OkStatus();
}

PpoLossResult PpoActorLoss(const PpoLossInput& input, const PpoLossConfig& config) {
  const absl::Status valid = ValidatePpoLossConfig(config);
  MOERL_CHECK(valid.ok()) << valid.message();
  const at::Tensor& lp = input.logp_n;
  const int64_t n = lp.numel();
  MOERL_CHECK(lp.dim() == 1) << "PpoActorLoss: logp_n must be 1-D, got " << lp.sizes();
  for (const at::Tensor* t : {&input.prox_logp_n, &input.behave_logp_n, &input.advantages_n,
                              &input.loss_mask_n}) {
    MOERL_CHECK(t->defined() && t->dim() == 1 && t->numel() == n)
        << "PpoActorLoss: every input must be [N] with N = " << n;
  }
  if (input.entropy_n.defined()) {
    MOERL_CHECK(input.entropy_n.numel() == n) << "PpoActorLoss: entropy_n must be [N]";
  }
  const int64_t total = std::accumulate(input.seq_lens.begin(), input.seq_lens.end(), int64_t{0});
  MOERL_CHECK(total == n) << "PpoActorLoss: seq_lens sum to " << total << ", expected N = " << n;

  Segments seg;
  seg.num_seqs = static_cast<int64_t>(input.seq_lens.size());
  seg.seq_idx_n = at::arange(seg.num_seqs, at::TensorOptions().dtype(at::kLong))
                      .repeat_interleave(at::tensor(input.seq_lens, at::kLong))
                      .to(lp.device());

  const at::Tensor prox = input.prox_logp_n.detach().to(at::kFloat);
  const at::Tensor behave = input.behave_logp_n.detach().to(at::kFloat);
  at::Tensor adv = input.advantages_n.detach().to(at::kFloat);
  const at::Tensor mask0 = input.loss_mask_n.to(at::kBool);
  at::Tensor mask = mask0;

  PpoLossResult result;
  StatCollector stats;

  // Rejection sampling (AReaL), then the mismatch correction (ours).
  std::optional<Rejection> rejection;
  if (config.rejection_sampling) {
    rejection = ApplyRejectionSampling(prox, behave, mask, seg, *config.rejection_sampling);
    mask = rejection->mask_n;
  }
  std::optional<Mismatch> mismatch;
  if (!config.mismatch.kind.empty()) {
    mismatch = ApplyMismatchCorrection(prox, behave, mask, seg, config.mismatch);
    const std::string& kind = config.mismatch.kind;
    stats.Stat("mismatch/" + kind + "_weight", mismatch->weight_n, mask);
    stats.Stat("mismatch/ratio", mismatch->ratio_n, mask);
    stats.Ratio("mismatch/masked_fraction",
                mask.logical_and(mismatch->keep_n.logical_not()).sum(), mask.sum());
    mask = mismatch->keep_n;
  }

  // The PPO ratio, per token or per sequence (GSPO).
  at::Tensor ratio;
  if (config.importance_sampling_level == "sequence") {
    const at::Tensor valid_count = seg.ValidCount(mask);
    const at::Tensor log_ratio_mean = seg.Sum(at::where(mask, lp - prox, 0.0)) / valid_count;
    ratio = at::where(mask, seg.Broadcast(log_ratio_mean.exp()), 0.0);
    adv = at::where(mask, seg.Broadcast(seg.Sum(at::where(mask, adv, 0.0)) / valid_count), 0.0);
  } else {
    ratio = at::where(mask, (lp - prox).exp(), 0.0);
  }
  const double eps_high = config.eps_clip_higher.value_or(config.eps_clip);
  const at::Tensor clipped_ratio = ratio.clamp(1.0 - config.eps_clip, 1.0 + eps_high);
  const at::Tensor loss1 = -adv * ratio;
  const at::Tensor loss2 = -adv * clipped_ratio;
  at::Tensor clip_mask = loss1.detach() < loss2.detach();
  at::Tensor loss = at::maximum(loss1, loss2);
  at::Tensor dual_clip_mask = at::zeros_like(clip_mask);
  if (config.c_clip) {
    const at::Tensor loss3 = at::sign(adv) * *config.c_clip * adv;
    dual_clip_mask = loss3.detach() < loss.detach();
    loss = at::minimum(loss, loss3);
  }
  at::Tensor behave_mask, behave_approx_kl;
  if (rejection) {
    behave_mask = (rejection->weight_n > 0).logical_and(rejection->mask_n);
    behave_approx_kl = at::where(behave_mask, prox - behave, 0.0);
    loss = loss * rejection->weight_n;
  }
  if (mismatch) loss = loss * mismatch->weight_n;

  result.loss_sum = at::where(mask, loss, 0.0).sum();
  clip_mask = clip_mask.logical_and(mask);
  dual_clip_mask = dual_clip_mask.logical_and(mask);

  // Statistics, as grpo_loss_fn records them.
  stats.Denominator("n_tokens", at::ones_like(mask0));
  stats.Denominator("n_valid_tokens", mask0);
  stats.Denominator("clipped_tokens", clip_mask);
  stats.Denominator("dual_clipped_tokens", dual_clip_mask);
  stats.Stat("importance_weight", ratio, mask0);
  stats.Stat("approx_kl", lp - prox, mask0);
  stats.Stat("new_logp", lp, mask0);
  stats.Stat("old_logp", behave, mask0);
  if (input.entropy_n.defined()) stats.Stat("entropy", input.entropy_n, mask0);
  stats.Stat("actor_loss", loss, mask0);
  stats.Stat("clip_ratio", clip_mask.to(at::kFloat), mask0);
  stats.Stat("dual_clip_ratio", dual_clip_mask.to(at::kFloat), mask0);
  if (rejection) {
    stats.Denominator("unclipped_behave_tokens", behave_mask);
    stats.Stat("behave_imp_weight", rejection->weight_n, behave_mask);
    stats.Stat("behave_approx_kl", behave_approx_kl, behave_mask);
    stats.Scalar("rs_filtered_fraction", rejection->filtered_fraction);
  }
  stats.Stat("clipped_new_logp", at::where(clip_mask, lp.detach(), 0.0), clip_mask);
  stats.Stat("clipped_old_logp", at::where(clip_mask, behave, 0.0), clip_mask);

  result.stats = stats.Finish();
  result.n_valid_before = result.stats["n_valid_tokens"].sum;
  return result;
}

}  // namespace moerl
