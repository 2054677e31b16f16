// GRPO's objective for RunTrainStep (areal-reference.md §c.1-§c.3): Prepare
// recomputes the proximal log-probs when asked (pre-update weights, no
// grad), computes rewards and advantages (trainer/advantages.h) over the
// whole batch; each micro-batch's loss is AReaL's PPO actor loss
// (trainer/ppo_loss.h) summed over its tokens and divided by the
// minibatch's valid-token count.
//
// Routing mismatch: when sequences carry routed_experts, Prepare compares
// them with the routers' own top-k in a no-grad forward with the pre-update
// weights (the proximal recompute's when there is one, else one more, over
// those sequences only; under router replay, the layers before each router
// ran inference's experts, as in training) and records
// ppo_actor/routing/... With routing_mismatch_threshold, the tokens above it
// leave the loss mask after the advantages are computed (advantages and
// their normalisation are unchanged), so they count in neither the loss nor
// its token denominator.
//
//   GrpoObjective objective(GrpoOptionsFrom(settings), /*version=*/step);
//   RunTrainStep(model, optimizer, objective, seqs, ...);
//
// Log-prob alignment: the advantage code works on padded rows where position
// i predicts token i + 1 (rolled); the loss works on the flat list of
// completion tokens in sequence order (policy_forward.h), which is row b's
// rolled positions P_b - 1 .. L_b - 2.
// Thread-compatible.
#ifndef MOERL_TRAINER_GRPO_OBJECTIVE_H_
#define MOERL_TRAINER_GRPO_OBJECTIVE_H_

#include <cstdint>
#include <vector>

#include "trainer/advantages.h"
#include "trainer/ppo_loss.h"
#include "trainer/train_step.h"
#include "trainer/trainer_settings.h"

namespace moerl {

struct GrpoOptions {
  AdvantageConfig advantages;
  PpoLossConfig loss;
  double temperature = 1.0;
  bool recompute_logprob = false;
  bool use_decoupled_loss = false;
  bool router_replay = false;
  // Completion tokens whose routing mismatch fraction exceeds this leave
  // the loss mask (trainer/routing_mismatch.h); null: none.
  std::optional<double> routing_mismatch_threshold;
  std::optional<int64_t> max_tokens_per_mb;  // for the proximal recompute
};

GrpoOptions GrpoOptionsFrom(const TrainerSettings& settings);

class GrpoObjective : public Objective {
 public:
  // `version`: the policy version being trained (staleness is measured from
  // it). `ref`: the reference model of the KL penalty (kl_ctl != 0), or null.
  GrpoObjective(GrpoOptions options, int64_t version, Qwen3Model* ref = nullptr)
      : options_(std::move(options)), version_(version), ref_(ref) {}

  absl::Status Prepare(Qwen3Model& model, const std::vector<TrainSequence>& seqs, StatsRecorder* stats) override;
  int64_t LossTokens(const std::vector<TrainSequence>& seqs, const IndexList& indices) const override;
  at::Tensor MicroBatchLoss(const std::vector<TrainSequence>& seqs, const IndexList& micro,
                            const PolicyOutput& out, double denominator, StatsRecorder* stats) override;
  PolicyForwardOptions ForwardOptions() const override {
    PolicyForwardOptions o;
    o.temperature = options_.temperature;
    o.with_entropy = true;
    o.replay_routes = options_.router_replay;
    return o;
  }

  // Per sequence, over its completion tokens (after Prepare).
  const std::vector<at::Tensor>& advantages() const { return adv_; }
  const std::vector<at::Tensor>& prox_logp() const { return prox_; }
  const std::vector<at::Tensor>& loss_mask() const { return mask_; }

 private:
  GrpoOptions options_;
  int64_t version_;
  Qwen3Model* ref_;
  // Per sequence, fp32 [completion tokens].
  std::vector<at::Tensor> adv_, prox_, behave_, mask_;
  std::vector<int64_t> valid_;  // mask sums
};

}  // namespace moerl

#endif  // MOERL_TRAINER_GRPO_OBJECTIVE_H_
