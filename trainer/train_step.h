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
// Data and expert parallel (`parallel` non-null, model from ParallelizeQwen3):
// every rank holds the whole batch and runs Prepare on all of it (the same
// forwards on every rank, so batch-level advantage norms are the one-process
// ones); each minibatch (the one-process split) is divided across the data
// shards by whole groups, balanced by tokens (SplitAcrossDataShards); the
// divisor is the minibatch's loss tokens summed over dp-cp; every rank runs
// as many micro-batch forwards as the busiest shard (an empty one pads: each
// forward communicates; under expert parallelism an empty forward is not yet
// supported and uneven micro-batch counts are FailedPrecondition); then
// GradientReducer::Reduce, the global-norm clip
// and AdamW (or, when optimizer.ReducesGradients(), the distributed
// optimizer's Step, which reduce-scatters and clips on its shards). The micro-batch statistics are merged over dp-cp so that every
// rank's recorder describes the whole batch. With one micro-batch per shard
// (max_tokens_per_mb unset or large) the result equals one process.
// Pipeline parallel (pp > 1, trainer/pipeline_train.h): each minibatch's
// micro-batches run as one 1F1B schedule over the stages (every shard needs
// the same count, else FailedPrecondition), Prepare's no-grad forwards as a
// forward-only pipeline pass, and the last stage's statistics are merged
// over pp too.
// Thread-compatible.
#ifndef MOERL_TRAINER_TRAIN_STEP_H_
#define MOERL_TRAINER_TRAIN_STEP_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "trainer/micro_batches.h"
#include "trainer/model/model.h"
#include "trainer/optimizer.h"
#include "trainer/parallel/parallel_state.h"
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

  // How Prepare's no-grad forwards run; RunTrainStep installs a pipeline
  // pass under pipeline parallelism. Unset: PolicyForward per micro-batch.
  void set_batch_forward(BatchPolicyForward fn) { batch_forward_ = std::move(fn); }

 protected:
  std::vector<PolicyOutput> ForwardMicroBatches(Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                                                const std::vector<IndexList>& micros,
                                                const PolicyForwardOptions& options) {
    if (batch_forward_) return batch_forward_(model, seqs, micros, options);
    std::vector<PolicyOutput> out;
    for (const IndexList& micro : micros) out.push_back(PolicyForward(model, seqs, micro, options));
    return out;
  }

 private:
  BatchPolicyForward batch_forward_;
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
// Collectives that fail (a dead rank) come back as Unavailable.
absl::Status RunTrainStep(Qwen3Model& model, TrainOptimizer& optimizer, Objective& objective,
                          const std::vector<TrainSequence>& seqs, const TrainStepOptions& options,
                          int64_t step, StatsRecorder* stats, const ParallelState* parallel = nullptr);

// `mini` (indices into seqs) cut into `n` lists: whole groups (runs of equal
// non-empty group_id; a sequence without one is its own group), or single
// sequences when there are fewer groups than lists; largest first into the
// list with the fewest tokens (ties: lower list, lower index); each list
// ascending. Deterministic; a list is empty only when mini has < n sequences.
std::vector<IndexList> SplitAcrossDataShards(const std::vector<TrainSequence>& seqs, const IndexList& mini,
                                             int64_t n);

// The gradient of one minibatch (`mini`, indices into seqs), accumulated
// over its micro-batches into the parameters' .grad (not zeroed first).
// Returns the number of micro-batches. RunTrainStep's inner loop, public so
// tests can compare gradients across micro-batch sizes.
// With `parallel`, this rank's share of the minibatch (see above); returns
// the micro-batch forwards this rank ran (the same on every rank).
int64_t AccumulateMinibatchGradients(Qwen3Model& model, Objective& objective,
                                     const std::vector<TrainSequence>& seqs, const IndexList& mini,
                                     const TrainStepOptions& options, StatsRecorder* stats,
                                     const ParallelState* parallel = nullptr);

// Sum, count, min and max of `values_n` over `mask_n` (any float dtype),
// recorded as a stat.
void RecordMaskedStat(StatsRecorder* stats, const std::string& name, const at::Tensor& values_n,
                      const at::Tensor& mask_n);

}  // namespace moerl

#endif  // MOERL_TRAINER_TRAIN_STEP_H_
