#include "trainer/train_step.h"

#include <ATen/ops/where.h>
#include <ATen/ops/full_like.h>

#include <limits>

#include "common/logging.h"
#include "common/status.h"

namespace moerl {

void RecordMaskedStat(StatsRecorder* stats, const std::string& name, const at::Tensor& values_n,
                      const at::Tensor& mask_n) {
  at::Tensor v = values_n.detach().to(at::kDouble);
  at::Tensor m = mask_n.detach().to(at::kBool);
  const double count = m.sum().item<double>();
  if (count <= 0) return;
  const double inf = std::numeric_limits<double>::infinity();
  const double sum = at::where(m, v, at::zeros_like(v)).sum().item<double>();
  const double min = at::where(m, v, at::full_like(v, inf)).min().item<double>();
  const double max = at::where(m, v, at::full_like(v, -inf)).max().item<double>();
  stats->Stat(name, sum, count, min, max);
}

int64_t AccumulateMinibatchGradients(Qwen3Model& model, Objective& objective,
                                     const std::vector<TrainSequence>& seqs, const IndexList& mini,
                                     const TrainStepOptions& options, StatsRecorder* stats) {
  const std::vector<int64_t> lengths = SequenceLengths(seqs);
  const double aux_coef = options.aux_loss_coef.value_or(model.config().router_aux_loss_coef);
  const double z_coef = options.z_loss_coef.value_or(model.config().router_z_loss_coef);
  const PolicyForwardOptions forward = objective.ForwardOptions();
  const double denominator = static_cast<double>(objective.LossTokens(seqs, mini));
  const std::vector<IndexList> micros = PackMicroBatches(lengths, mini, options.max_tokens_per_mb);
  for (const IndexList& micro : micros) {
    PolicyOutput out = PolicyForward(model, seqs, micro, forward);
    at::Tensor loss = objective.MicroBatchLoss(seqs, micro, out, denominator > 0 ? denominator : 1.0, stats);
    if (out.aux_loss.defined() && (aux_coef != 0 || z_coef != 0)) {
      // The routers' losses weigh each micro-batch by its share of the loss tokens.
      const double share =
          denominator > 0 ? static_cast<double>(objective.LossTokens(seqs, micro)) / denominator : 0.0;
      stats->Scalar("ppo_actor/update/aux_loss", out.aux_loss.item<double>());
      loss = loss + out.aux_loss * (aux_coef * share) + out.z_loss * (z_coef * share);
    }
    loss.backward();
  }
  return static_cast<int64_t>(micros.size());
}

absl::Status RunTrainStep(Qwen3Model& model, TrainOptimizer& optimizer, Objective& objective,
                          const std::vector<TrainSequence>& seqs, const TrainStepOptions& options,
                          int64_t step, StatsRecorder* stats) {
  MOERL_RETURN_IF_ERROR(objective.Prepare(model, seqs, stats));
  for (const IndexList& mini : SplitMinibatches(SequenceLengths(seqs), options.ppo_n_minibatches)) {
    optimizer.ZeroGrad();
    const int64_t n_micro = AccumulateMinibatchGradients(model, objective, seqs, mini, options, stats);
    const OptimizerStepResult r = optimizer.Step(step);
    stats->Scalar("ppo_actor/update/grad_norm", r.grad_norm);
    stats->Scalar("ppo_actor/update/lr", r.lr);
    stats->Scalar("ppo_actor/update/update_successful", r.updated ? 1.0 : 0.0);
    stats->Scalar("ppo_actor/update/num_micro_batches", static_cast<double>(n_micro));
    if (!r.updated) {
      MOERL_LOG(WARNING) << "step " << step << ": gradient norm " << r.grad_norm
                         << " is not finite; update skipped";
    }
  }
  return absl::OkStatus();
}

}  // namespace moerl
