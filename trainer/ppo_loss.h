// The PPO actor loss of one micro-batch: AReaL's ppo_actor_loss_fn and the
// statistics its grpo_loss_fn records (areal/utils/functional/functional.py,
// areal/trainer/ppo/actor.py at HEAD = areal 1.0.4), plus the train/inference
// mismatch corrections other systems offer (TIS, MIS, IcePop).
//
// Legend: N tokens of packed sequences (flat, end to end, rolled alignment:
// position i holds the log-prob of token i + 1); lp = logp_n (current policy,
// with grad), prox = prox_logp_n, behave = behave_logp_n, A = advantages_n,
// m0 = loss_mask_n.
//
//   N0 = count(m0)                                       (before any rejection)
//   rejection_sampling (if set), from log_w = prox - behave (non-finite -> 0):
//     metric ratio: w = e^log_w; kl_k1 = prox - behave; kl_k2 = d^2/2; kl_k3 = e^-d - 1 + d
//     level token: test each token; level sequence: aggregate each sequence's valid
//       tokens (ratio in log space: mean = geometric mean, sum = product; KL
//       arithmetically; max = token max), and for the ratio metric w itself becomes
//       the sequence's geometric mean
//     action mask: m = m0 & in_bounds; action clamp: w = clamp(w, lower or 0, upper)
//       (sequence level: only in out-of-bound sequences); then w = 0 where m = 0
//   mismatch correction (if mismatch.kind is set, below): m = m & keep, w_mismatch
//   rho  = e^(lp - prox) on m (token), or GSPO (sequence): rho = e^(mean_seq(lp - prox))
//          and A = mean_seq(A), both over m and broadcast
//   L    = max(-A rho, -A clamp(rho, 1 - eps_clip, 1 + (eps_clip_higher or eps_clip)))
//   L    = min(L, c_clip |A|)                           (dual clip, if c_clip)
//   L    = L * w                                        (only if rejection_sampling is set)
//   L    = L * w_mismatch                               (only if mismatch.kind is set)
//   loss_sum = sum over m of L;  AReaL's micro-batch loss = loss_sum / max(N0, 1)
//
// HEAD's semantics kept exactly: with use_decoupled_loss and no
// rejection_sampling, w is NOT applied (AReaL only logs a warning); tokens
// removed by rejection still count in N0; rejection_sampling.upper unset means
// AReaL's default 5.0.
//
// Mismatch corrections (ours, not in AReaL; beside the decoupled loss). With
// r = e^(prox - behave) (non-finite log -> 0), or at level sequence the
// geometric mean of r over the sequence's tokens still in m, broadcast:
//   tis:    w_mismatch = min(r, cap)                             (truncated IS)
//   mis:    w_mismatch = r, tokens (sequences) with r > cap leave m   (masked IS)
//   icepop: w_mismatch = r, tokens (sequences) with r outside [low, high] leave m
//           (IcePop's M(k) = k on [low, high], else 0)
//
// Statistics (PpoLossResult::stats), names as AReaL exports them under
// ppo_actor/update/; each is a StatAccumulator over its own mask:
//   denominators (sum = true entries, count = entries): n_tokens (all N),
//     n_valid_tokens (m0), clipped_tokens, dual_clipped_tokens (on m),
//     unclipped_behave_tokens (w > 0 on m; with rejection_sampling)
//   over n_valid_tokens: importance_weight (rho), approx_kl (lp - prox), new_logp,
//     old_logp (behave), entropy (if given), actor_loss (L, before masking),
//     clip_ratio, dual_clip_ratio
//   over unclipped_behave_tokens (with rejection_sampling): behave_imp_weight (w),
//     behave_approx_kl (prox - behave)
//   over clipped_tokens: clipped_new_logp, clipped_old_logp
//   rs_filtered_fraction (with rejection_sampling): AReaL's scalar, one value per
//     call (sum = the fraction, count = 1)
//   with a mismatch correction, over the tokens it judged (m before it):
//     mismatch/<kind>_weight (w_mismatch; 0 on tokens it removed), mismatch/ratio (r);
//     mismatch/masked_fraction (sum = tokens it removed, count = tokens judged)
//
//   PpoLossResult r = PpoActorLoss(input, config);
//   (r.loss_sum / global_n_valid).backward();
//
// The caller divides by the minibatch's global N0 (AReaL's token-level mean).
// Pure function; one host sync for all statistics. Thread-safe.
#ifndef MOERL_TRAINER_PPO_LOSS_H_
#define MOERL_TRAINER_PPO_LOSS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "trainer/stats_accumulator.h"

namespace moerl {

struct RejectionSamplingConfig {   // actor.rejection_sampling
  std::string metric = "ratio";    // ratio, kl_k1, kl_k2, kl_k3
  std::string level = "token";     // token, sequence
  std::string agg = "mean";        // sequence level: mean, sum, max
  std::string action = "mask";     // mask, clamp (clamp: ratio only)
  std::optional<double> lower, upper;  // upper unset = AReaL's default 5.0
};

struct MismatchCorrection {        // beside AReaL's decoupled loss; at most one kind
  std::string kind;                // "" (off), "tis", "mis", "icepop"
  std::string level = "token";     // tis/mis: token or sequence (geometric mean of the ratio)
  double cap = 2.0;                // tis: weight truncated at cap; mis: weights above cap masked
  double low = 0.5, high = 2.0;    // icepop: tokens whose ratio is outside [low, high] are masked
};

struct PpoLossConfig {
  double eps_clip = 0.2;
  std::optional<double> eps_clip_higher;
  std::optional<double> c_clip;                 // dual clip, > 1
  std::optional<RejectionSamplingConfig> rejection_sampling;
  std::string importance_sampling_level = "token";  // token, sequence (GSPO)
  MismatchCorrection mismatch;
};

// Flat over the N tokens of one micro-batch (packed sequences, end to end), rolled alignment.
struct PpoLossInput {
  at::Tensor logp_n;         // fp32, current policy, carries grad
  at::Tensor prox_logp_n;    // fp32, proximal policy (no grad)
  at::Tensor behave_logp_n;  // fp32, inference (behaviour) policy
  at::Tensor advantages_n;   // fp32
  at::Tensor loss_mask_n;    // fp32 0/1
  std::vector<int64_t> seq_lens;  // tokens of each sequence in the flat layout (sum = N)
  at::Tensor entropy_n;      // fp32, optional, only for stats
};

struct PpoLossResult {
  at::Tensor loss_sum;        // 0-dim fp32: sum over valid tokens (after masking) of L * w
  double n_valid_before = 0;  // N0: count of the mask before rejection (the denominator)
  std::map<std::string, StatAccumulator> stats;  // see the header comment
};

// InvalidArgument naming the actor.* key for values AReaL rejects (its
// RejectionSamplingConfig.__post_init__, c_clip <= 1, unknown levels) and for
// a bad mismatch correction.
absl::Status ValidatePpoLossConfig(const PpoLossConfig& config);

// CHECK-fails on inputs of different lengths or seq_lens not summing to N, and
// on a config ValidatePpoLossConfig rejects (validate configs when loading them).
PpoLossResult PpoActorLoss(const PpoLossInput& input, const PpoLossConfig& config);

}  // namespace moerl

#endif  // MOERL_TRAINER_PPO_LOSS_H_
