// Rewards to advantages, AReaL's PPOActor._compute_advantages (HEAD) and its
// Normalization (areal/utils/data.py), for GRPO and its relatives.
//
// Shapes: B sequences, L padded width (prompt + completion, left-aligned).
//
//   r1_b   = clip((r_b + reward_bias) * reward_scaling, -reward_clip, reward_clip)
//   r1_b   = Normalize(r1_b, reward_norm)                  (if set; mask: none)
//   m_bl   = roll(loss_mask, -1)                           (position i predicts token i+1)
//   lp_bl  = roll(behave_logp, -1) * m;  ref_bl = roll(ref_logp, -1) * m   (0 without ref)
//   kl_bl  = -kl_ctl * clamp(KL_k(lp, ref), -10, 10)        k1: d, k2: d^2/2, k3: e^-d - 1 + d
//   rew_bl = kl_bl;  rew[b, len_b - 1] = 0;  rew[b, max(len_b - 2, 0)] += r1_b
//            (0 instead of r1_b for no-EOS rows under mask_no_eos_with_zero)
//   GAE right to left over t = L-2..0 with V = 0 (no critic):
//            g = rew_t + discount*lambda*g_next where m_t = 1, g carried through where m_t = 0;
//            adv[:, L-1] = 0
//   adv_bl = Normalize(adv, adv_norm, mask m)              (if set)
//
// Normalize (one NormConfig; "batch" = over all masked entries, "group" = over
// consecutive blocks of group_size rows), in float64 like AReaL:
//   mean: masked mean; leave-one-out: (S - x)/(n - 1) per masked entry (0 if n <= 1);
//         group_size 1 with leave-one-out: 0
//   std:  sqrt(sum m (x - mean)^2 / (n - 1)) (unbiased; 1 if n <= 1) or / n (1 if n = 0);
//         group_size 1 with std_unbiased: 1.  std_level "" : std = 1 and eps = 0
//   out = (x - mean) * m / (std + eps)
// with AReaL's precision quirks kept: group-level means and stds are stored in
// fp32 before use; an all-zero mask returns x unchanged.
//
// For GSM8K GRPO (reward 0/1, bias -0.5, scale 10, group norm over n_samples,
// batch adv norm) every completion token of a sequence gets the same advantage.
//
//   AdvantageConfig cfg;
//   cfg.reward_bias = -0.5; cfg.reward_scaling = 10;
//   cfg.reward_norm = NormConfig{"group", "group"}; cfg.reward_norm->group_size = 4;
//   cfg.adv_norm = NormConfig{};
//   MOERL_ASSIGN_OR_RETURN(Advantages adv, ComputeAdvantages(batch, cfg));
//
// Differences from AReaL, on purpose: the no-EOS flag is an input (AReaL
// derives it as len_b == L); there is no critic (values) and no DP all-reduce
// (batch level means this rank's batch); the overlong penalty is not here.
// Pure functions; results are fp32 on the inputs' device. Thread-safe.
#ifndef MOERL_TRAINER_ADVANTAGES_H_
#define MOERL_TRAINER_ADVANTAGES_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace moerl {

// AReaL's NormConfig (actor.reward_norm / actor.adv_norm).
struct NormConfig {
  std::string mean_level = "batch";  // "batch", "group", or "" (none; YAML null)
  std::string std_level = "batch";   // "batch", "group", or "" (none)
  bool mean_leave1out = false;
  bool std_unbiased = true;
  double eps = 1e-5;
  int64_t group_size = 1;
};

// x: [B] or [B, L]; mask: same shape (fp32/bool), or undefined = all valid.
// Returns the normalised x (0 where mask is 0), fp32. As AReaL: an all-zero
// mask returns x (as fp32) untouched. Rows past the last whole group are not
// normalised at group level (AReaL's behaviour); ComputeAdvantages rejects
// such batches. CHECK-fails on an unknown level or group_size < 1 with a group
// level (config errors are caught by ValidateNormConfig).
at::Tensor Normalize(const at::Tensor& x, const at::Tensor& mask, const NormConfig& config);

// InvalidArgument naming `key` (e.g. "actor.adv_norm") for an unknown level
// or a group level with group_size < 1.
absl::Status ValidateNormConfig(const NormConfig& config, const std::string& key);

struct AdvantageConfig {
  double reward_bias = 0.0, reward_scaling = 1.0, reward_clip = 20.0;
  std::optional<NormConfig> reward_norm;  // unset = no reward normalisation
  std::optional<NormConfig> adv_norm;     // unset = no advantage normalisation
  double kl_ctl = 0.0;
  std::string kl_estimator = "k1";        // k1, k2, k3
  double discount = 1.0, gae_lambda = 1.0;
  bool mask_no_eos_with_zero = false;
};

// Padded [B, L] layout as AReaL: row b = prompt + completion of sequence b, left-aligned.
struct AdvantageBatch {
  at::Tensor rewards_b;       // fp32 [B] task rewards
  at::Tensor loss_mask_bl;    // fp32 [B, L]: 1 on completion tokens (position i = token i)
  at::Tensor behave_logp_bl;  // fp32 [B, L]: inference log-prob of token i at i, 0 on the prompt
  at::Tensor ref_logp_bl;     // fp32 [B, L], same alignment; undefined without a reference model
  at::Tensor seqlens_b;       // int64 [B]: tokens in row b
  at::Tensor no_eos_b;        // bool [B]: sequence ended without a stop token (may be undefined = all false)
};

// Rolled layout (position i predicts token i + 1), AReaL's §c.2 step 9.
struct Advantages {
  at::Tensor advantages_bl, kl_rewards_bl, tot_rewards_bl, loss_mask_bl, behave_logp_bl, ref_logp_bl;
  at::Tensor shaped_rewards_b;  // r1 after bias/scale/clip and reward_norm
};

// InvalidArgument for shape or dtype mismatches, seqlens outside [1, L], an
// unknown kl_estimator or norm level, or B not a multiple of a group size.
absl::StatusOr<Advantages> ComputeAdvantages(const AdvantageBatch& batch,
                                             const AdvantageConfig& config);

}  // namespace moerl

#endif  // MOERL_TRAINER_ADVANTAGES_H_
