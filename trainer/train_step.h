// One training step over a batch of TrainSequences, whatever the objective
// (GRPO's PPO loss or SFT's cross-entropy): Prepare (advantages, proximal
// log-probs: no grad, pre-update weights), then for each of
// ppo_n_minibatches token-balanced minibatches one optimizer step, its
// gradient accumulated over FFD-packed micro-batches of at most
// max_tokens_per_mb tokens. Each micro-batch's loss is already divided by
// the minibatch's loss-token count (a global token mean), so micro-batching
// leaves the gradient unchanged. The MoE routers' aux loss
// (router_aux_loss_coef) and z-loss enter each micro-batch weighted by its
// share of the minibatch's loss tokens.
//
//   GrpoObjective objective(...);
//   StatsRecorder stats;
//   MOERL_RETURN_IF_ERROR(RunTrainStep(model, optimizer, objective, seqs, options, step, &stats));
//
// Single rank. A ParallelState will be passed beside `model` when the
// trainer is parallelised (gradient all-reduce before the optimizer step,
// denominators all-reduced); nothing here is global.
// Thread-compatible.
#ifndef MOERL_TRAINER_TRAIN_STEP_H_
#define MOERL_TRAINER_TRAIN_STEP_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "trainer/micro_batches.h"
#include "trainer/model/model.h"
#include "trainer/optimizer.h"
#include "trainer/policy_forward.h"
#include "trainer/stats_log.h"
#include "trainer/train_batch.h"

namespace moerl {

class Objective {
 public:
  virtual ~Objective() = default;
  // Once per step, before any update: whatever needs the whole batch.
  virtual absl::Status Prepare(Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                               StatsRecorder* stats) = 0;
  // Completion tokens of `indices` that carry a loss (the denominator).
  virtual int64_t LossTokens(const std::vector<TrainSequence>& seqs, const IndexList& indices) const = 0;
  // The micro-batch's loss, divided by `denominator`; adds its statistics.
  virtual at::Tensor MicroBatchLoss(const std::vector<TrainSequence>& seqs, const IndexList& micro,
                                    const PolicyOutput& out, double denominator, StatsRecorder* stats) = 0;
  // Options of the training forward (temperature, entropy, router replay).
  virtual PolicyForwardOptions ForwardOptions() const = 0;
};

struct TrainStepOptions {
  int64_t ppo_n_minibatches = 1;
  std::optional<int64_t> max_tokens_per_mb;
  // Weights of the routers' losses; default from the model config.
  std::optional<double> aux_loss_coef;
  std::optional<double> z_loss_coef;
};

// `step` is the 0-based training step (it sets the lr). Records
// ppo_actor/update/{grad_norm,lr,update_successful,num_micro_batches,
// aux_loss} and whatever the objective adds.
absl::Status RunTrainStep(Qwen3Model& model, TrainOptimizer& optimizer, Objective& objective,
                          const std::vector<TrainSequence>& seqs, const TrainStepOptions& options,
                          int64_t step, StatsRecorder* stats);

// The gradient of one minibatch (`mini`, indices into seqs), accumulated
// over its micro-batches into the parameters' .grad (not zeroed first).
// Returns the number of micro-batches. RunTrainStep's inner loop, public so
// tests can compare gradients across micro-batch sizes.
int64_t AccumulateMinibatchGradients(Qwen3Model& model, Objective& objective,
                                     const std::vector<TrainSequence>& seqs, const IndexList& mini,
                                     const TrainStepOptions& options, StatsRecorder* stats);

// Sum, count, min and max of `values_n` over `mask_n` (any float dtype),
// recorded as a stat.
void RecordMaskedStat(StatsRecorder* stats, const std::string& name, const at::Tensor& values_n,
                      const at::Tensor& mask_n);

}  // namespace moerl

#endif  // MOERL_TRAINER_TRAIN_STEP_H_
