#include "trainer/grpo_objective.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "trainer/routing_mismatch.h"

namespace moerl {
namespace {

std::optional<NormConfig> ToNorm(const std::optional<NormSettings>& n) {
  if (!n) return std::nullopt;
  NormConfig c;
  c.mean_level = n->mean_level;
  c.std_level = n->std_level;
  c.mean_leave1out = n->mean_leave1out;
  c.std_unbiased = n->std_unbiased;
  c.eps = n->eps;
  c.group_size = n->group_size;
  return c;
}

at::Tensor Floats(const std::vector<float>& v) {
  return at::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())}, at::kFloat).clone();
}

}  // namespace

GrpoOptions GrpoOptionsFrom(const TrainerSettings& s) {
  GrpoOptions o;
  o.advantages.reward_bias = s.reward_bias;
  o.advantages.reward_scaling = s.reward_scaling;
  o.advantages.reward_clip = s.reward_clip;
  o.advantages.reward_norm = ToNorm(s.reward_norm);
  o.advantages.adv_norm = ToNorm(s.adv_norm);
  o.advantages.kl_ctl = s.kl_ctl;
  o.advantages.kl_estimator = s.kl_estimator;
  o.advantages.discount = s.discount;
  o.advantages.gae_lambda = s.gae_lambda;
  o.advantages.mask_no_eos_with_zero = s.mask_no_eos_with_zero;
  o.loss.eps_clip = s.eps_clip;
  o.loss.eps_clip_higher = s.eps_clip_higher;
  o.loss.c_clip = s.c_clip;
  if (s.rejection_sampling) {
    RejectionSamplingConfig r;
    r.metric = s.rejection_sampling->metric;
    r.level = s.rejection_sampling->level;
    r.agg = s.rejection_sampling->agg;
    r.action = s.rejection_sampling->action;
    r.lower = s.rejection_sampling->lower;
    r.upper = s.rejection_sampling->upper;
    o.loss.rejection_sampling = r;
  }
  o.loss.importance_sampling_level = s.importance_sampling_level;
  o.loss.mismatch.kind = s.mismatch_correction.kind;
  o.loss.mismatch.level = s.mismatch_correction.level;
  o.loss.mismatch.cap = s.mismatch_correction.cap;
  o.loss.mismatch.low = s.mismatch_correction.low;
  o.loss.mismatch.high = s.mismatch_correction.high;
  o.temperature = s.temperature;
  o.recompute_logprob = s.recompute_logprob;
  o.use_decoupled_loss = s.use_decoupled_loss;
  o.router_replay = s.router_replay;
  o.routing_mismatch_threshold = s.routing_mismatch_threshold;
  o.max_tokens_per_mb = s.max_tokens_per_mb;
  return o;
}

absl::Status GrpoObjective::Prepare(Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                                    StatsRecorder* stats) {
  const int64_t B = static_cast<int64_t>(seqs.size());
  int64_t L = 0;
  for (const TrainSequence& s : seqs) L = std::max(L, s.Length());

  IndexList routed;  // the sequences that carry routed_experts
  for (int64_t b = 0; b < B; ++b) {
    if (!seqs[b].routed_experts.empty()) routed.push_back(b);
  }
  if (options_.router_replay || !routed.empty()) MOERL_RETURN_IF_ERROR(ValidateRoutes(model.config(), seqs));
  RoutingMismatch mismatch(model.config());
  // Under sequence or context parallelism a rank's forward holds only its
  // token rows of the routes, a pipeline stage only its layers': the
  // comparison (whole sequences, every layer) is skipped there.
  if (model.sequence_shards() > 1 || model.context_parallel() || !model.holds_all_layers()) routed.clear();
  // Proximal log-probs: one no-grad pass with the pre-update weights.
  std::vector<at::Tensor> prox(B);
  const bool compute_prox = options_.use_decoupled_loss || options_.recompute_logprob;
  if (compute_prox) {
    const absl::Time start = absl::Now();
    at::NoGradGuard no_grad;
    const std::vector<int64_t> lengths = SequenceLengths(seqs);
    IndexList all(B);
    for (int64_t i = 0; i < B; ++i) all[i] = i;
    PolicyForwardOptions fwd;
    fwd.temperature = options_.temperature;
    fwd.replay_routes = options_.router_replay;
    const std::vector<IndexList> micros = PackMicroBatches(lengths, all, options_.max_tokens_per_mb);
    const std::vector<PolicyOutput> outs = ForwardMicroBatches(model, seqs, micros, fwd);
    for (size_t m = 0; m < micros.size(); ++m) {
      const IndexList& micro = micros[m];
      const PolicyOutput& out = outs[m];
      if (!routed.empty()) mismatch.Add(seqs, micro, out);
      int64_t offset = 0;
      for (size_t j = 0; j < micro.size(); ++j) {
        // Kept on the host with the other per-sequence rows (MicroBatchLoss
        // moves a micro-batch's rows to the model's device).
        prox[micro[j]] = out.logp_n.narrow(0, offset, out.output_lens[j]).to(at::kCPU).clone();
        offset += out.output_lens[j];
      }
    }
    stats->Scalar("timeperf/recompute_logp", absl::ToDoubleSeconds(absl::Now() - start));
  } else if (!routed.empty()) {
    // No recompute to reuse: one forward for the routes alone.
    const absl::Time start = absl::Now();
    at::NoGradGuard no_grad;
    PolicyForwardOptions fwd;
    fwd.temperature = options_.temperature;
    fwd.replay_routes = options_.router_replay;
    for (const IndexList& micro : PackMicroBatches(SequenceLengths(seqs), routed, options_.max_tokens_per_mb)) {
      mismatch.Add(seqs, micro, PolicyForward(model, seqs, micro, fwd));
    }
    stats->Scalar("timeperf/routing_mismatch", absl::ToDoubleSeconds(absl::Now() - start));
  }

  // Padded [B, L] rows, left-aligned: prompt then completion.
  const absl::Time start = absl::Now();
  at::Tensor rewards_b = at::zeros({B}, at::kFloat);
  at::Tensor loss_mask_bl = at::zeros({B, L}, at::kFloat);
  at::Tensor behave_logp_bl = at::zeros({B, L}, at::kFloat);
  at::Tensor seqlens_b = at::zeros({B}, at::kLong);
  at::Tensor no_eos_b = at::zeros({B}, at::kBool);
  // recompute_logprob without the decoupled loss: old_logp is the recomputed one.
  const bool behave_is_prox = options_.recompute_logprob && !options_.use_decoupled_loss;
  for (int64_t b = 0; b < B; ++b) {
    const TrainSequence& s = seqs[b];
    rewards_b[b] = s.reward;
    seqlens_b[b] = s.Length();
    no_eos_b[b] = s.no_eos;
    loss_mask_bl[b].narrow(0, s.prompt_len, s.OutputLen()).fill_(1.0);
    behave_logp_bl[b].narrow(0, s.prompt_len, s.OutputLen())
        .copy_(behave_is_prox ? prox[b] : Floats(s.behave_logp));
  }
  at::Tensor ref_logp_bl;
  if (ref_ != nullptr) {
    const absl::Time ref_start = absl::Now();
    at::NoGradGuard no_grad;
    ref_logp_bl = at::zeros({B, L}, at::kFloat);
    IndexList all(B);
    for (int64_t i = 0; i < B; ++i) all[i] = i;
    PolicyForwardOptions fwd;
    fwd.temperature = options_.temperature;
    for (const IndexList& micro : PackMicroBatches(SequenceLengths(seqs), all, options_.max_tokens_per_mb)) {
      PolicyOutput out = PolicyForward(*ref_, seqs, micro, fwd);
      int64_t offset = 0;
      for (size_t j = 0; j < micro.size(); ++j) {
        const TrainSequence& s = seqs[micro[j]];
        ref_logp_bl[micro[j]].narrow(0, s.prompt_len, s.OutputLen()).copy_(out.logp_n.narrow(0, offset, s.OutputLen()));
        offset += s.OutputLen();
      }
    }
    stats->Scalar("timeperf/ref_logp", absl::ToDoubleSeconds(absl::Now() - ref_start));
  }
  AdvantageBatch batch;
  batch.ref_logp_bl = ref_logp_bl;
  batch.rewards_b = rewards_b;
  batch.loss_mask_bl = loss_mask_bl;
  batch.behave_logp_bl = behave_logp_bl;
  batch.seqlens_b = seqlens_b;
  batch.no_eos_b = no_eos_b;
  absl::StatusOr<Advantages> adv = ComputeAdvantages(batch, options_.advantages);
  if (!adv.ok()) return Annotate(adv.status(), "computing advantages");
  stats->Scalar("timeperf/compute_advantage", absl::ToDoubleSeconds(absl::Now() - start));

  // Flat per-sequence views of the rolled rows: positions P-1 .. L-2.
  adv_.assign(B, {});
  behave_.assign(B, {});
  mask_.assign(B, {});
  prox_.assign(B, {});
  valid_.assign(B, 0);
  for (int64_t b = 0; b < B; ++b) {
    const TrainSequence& s = seqs[b];
    auto row = [&](const at::Tensor& t_bl) {
      return t_bl[b].narrow(0, s.prompt_len - 1, s.OutputLen()).to(at::kFloat).contiguous();
    };
    adv_[b] = row(adv->advantages_bl);
    behave_[b] = row(adv->behave_logp_bl);
    mask_[b] = row(adv->loss_mask_bl);
    prox_[b] = compute_prox ? prox[b] : behave_[b];
  }
  int64_t dropped = 0;
  if (options_.routing_mismatch_threshold) {
    for (int64_t b : routed) {
      if (!mismatch.Has(b)) continue;
      at::Tensor keep_n = mismatch.TokenFraction(b).le(*options_.routing_mismatch_threshold).to(at::kFloat);
      dropped += mask_[b].gt(0).logical_and(keep_n.eq(0)).sum().item<int64_t>();
      mask_[b] = mask_[b] * keep_n;
    }
  }
  for (int64_t b = 0; b < B; ++b) valid_[b] = static_cast<int64_t>(mask_[b].sum().item<double>());
  mismatch.Record(dropped, stats);

  // Batch statistics (ppo_actor/..., §c.4).
  at::Tensor all_mask = at::cat(mask_), all_adv = at::cat(adv_);
  RecordMaskedStat(stats, "ppo_actor/advantages", all_adv, all_mask);
  std::vector<at::Tensor> kl, tot;
  for (int64_t b = 0; b < B; ++b) {
    const TrainSequence& s = seqs[b];
    kl.push_back(adv->kl_rewards_bl[b].narrow(0, s.prompt_len - 1, s.OutputLen()).to(at::kFloat));
    tot.push_back(adv->tot_rewards_bl[b].narrow(0, s.prompt_len - 1, s.OutputLen()).to(at::kFloat));
  }
  RecordMaskedStat(stats, "ppo_actor/kl_rewards", at::cat(kl), all_mask);
  RecordMaskedStat(stats, "ppo_actor/final_reward", at::cat(tot), all_mask);
  double n_tokens = 0, n_valid = 0, correct = 0, staleness_sum = 0, staleness_n = 0;
  double staleness_min = 1e300, staleness_max = -1e300;
  for (int64_t b = 0; b < B; ++b) {
    const TrainSequence& s = seqs[b];
    const double len = static_cast<double>(s.Length());
    n_tokens += len;
    n_valid += static_cast<double>(valid_[b]);
    const bool ok = s.reward > 0;
    correct += ok;
    stats->Stat("ppo_actor/task_reward", s.reward, 1, s.reward, s.reward);
    stats->Stat("ppo_actor/seq_len", len, 1, len, len);
    stats->Stat("ppo_actor/prompt_len", static_cast<double>(s.prompt_len), 1, static_cast<double>(s.prompt_len),
                static_cast<double>(s.prompt_len));
    stats->Stat(ok ? "ppo_actor/correct_seq_len" : "ppo_actor/incorrect_seq_len", len, 1, len, len);
    stats->Stat("ppo_actor/no_eos_ratios", s.no_eos ? 1.0 : 0.0, 1, s.no_eos, s.no_eos);
    stats->Scalar("rollout/reward", s.reward);
    for (int64_t v : s.versions) {
      const double st = static_cast<double>(version_ - v);
      staleness_sum += st;
      staleness_n += 1;
      staleness_min = std::min(staleness_min, st);
      staleness_max = std::max(staleness_max, st);
    }
  }
  stats->Denominator("ppo_actor/n_seqs", static_cast<double>(B));
  stats->Denominator("ppo_actor/n_tokens", n_tokens);
  stats->Denominator("ppo_actor/n_valid_tokens", n_valid);
  stats->Denominator("ppo_actor/correct_n_seqs", correct);
  stats->Denominator("ppo_actor/incorrect_n_seqs", static_cast<double>(B) - correct);
  stats->Scalar("ppo_actor/eps_clip", options_.loss.eps_clip);
  stats->Scalar("ppo_actor/use_dual_clip", options_.loss.c_clip ? 1.0 : 0.0);
  if (staleness_n > 0) {
    const char* prefix = "ppo_actor/update/version_stats/";
    for (const char* kind : {"sample_staleness_theta", "sample_staleness_proximal"}) {
      stats->Scalar(absl::StrCat(prefix, kind, "_avg"), staleness_sum / staleness_n);
      stats->Scalar(absl::StrCat(prefix, kind, "_min"), staleness_min);
      stats->Scalar(absl::StrCat(prefix, kind, "_max"), staleness_max);
    }
    stats->Scalar(absl::StrCat(prefix, "v_theta"), static_cast<double>(version_));
    stats->Scalar(absl::StrCat(prefix, "v_proximal"), static_cast<double>(version_));
    stats->Denominator(absl::StrCat(prefix, "n_valid_generated_tokens"), staleness_n);
  }
  return absl::OkStatus();
}

int64_t GrpoObjective::LossTokens(const std::vector<TrainSequence>&, const IndexList& indices) const {
  int64_t n = 0;
  for (int64_t i : indices) n += valid_[i];
  return n;
}

at::Tensor GrpoObjective::MicroBatchLoss(const std::vector<TrainSequence>&, const IndexList& micro,
                                         const PolicyOutput& out, double denominator, StatsRecorder* stats) {
  std::vector<at::Tensor> prox, behave, adv, mask;
  for (int64_t i : micro) {
    prox.push_back(prox_[i]);
    behave.push_back(behave_[i]);
    adv.push_back(adv_[i]);
    mask.push_back(mask_[i]);
  }
  PpoLossInput input;
  const c10::Device device = out.logp_n.device();
  input.logp_n = out.logp_n;
  input.prox_logp_n = at::cat(prox).to(device);
  input.behave_logp_n = at::cat(behave).to(device);
  input.advantages_n = at::cat(adv).to(device);
  input.loss_mask_n = at::cat(mask).to(device);
  input.seq_lens = out.output_lens;
  input.entropy_n = out.entropy_n;
  PpoLossResult result = PpoActorLoss(input, options_.loss);
  for (const auto& [name, acc] : result.stats) {
    const std::string full = "ppo_actor/update/" + name;
    if (absl::EndsWith(name, "_tokens")) {
      stats->Denominator(full, acc.sum);  // a denominator: AReaL exports its sum
    } else if (name == "rs_filtered_fraction") {
      stats->Scalar(full, acc.Mean());
    } else {
      stats->Stat(full, acc.sum, acc.count, acc.min, acc.max);
    }
  }
  return result.loss_sum / denominator;
}

}  // namespace moerl
