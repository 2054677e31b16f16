// The trainer's optimizer step: AdamW (LibTorch's torch::optim::AdamW, the
// same update as torch.optim.AdamW: decoupled decay p *= 1 - lr*wd, then
// Adam with bias correction, eps added to sqrt(v_hat)), the lr schedule,
// gradient clipping by global L2 norm, and AReaL's rule that a non-finite
// norm skips the step (grads zeroed, update_successful = 0).
//
// Mixed precision (actor.dtype=bfloat16): when any parameter is not fp32,
// the optimizer keeps an fp32 master copy of every parameter and runs AdamW
// (and its moments) on those; after each step the model's parameters are
// the masters rounded to their dtype, so updates smaller than a bf16 step
// accumulate instead of rounding away. The model's gradients (its dtype) are
// clipped in place (the default clip sums the norm in fp32) and copied to
// the masters. Save/Load carry the masters in the same file (a file without
// them, from before, starts them from the model's weights).
// Export/ImportParameterStates give the same state per parameter, as
// tensors: the checkpoint gathers them into whole tensors
// (trainer/optimizer_state_io.h), so a resume may use another layout.
//
//   TrainOptimizer opt(model->parameters(), settings.optimizer, schedule);
//   opt.ZeroGrad();  loss.backward();
//   OptimizerStepResult r = opt.Step(/*train_step=*/s);   // lr from the schedule of step s
//   auto states = opt.ExportParameterStates();   // what checkpoints keep (optimizer_state_io.h)
//   // Save/Load: the earlier per-rank optimizer.pt format (Load reads old checkpoints)
//
// Subclasses (trainer/parallel/distributed_optimizer.h: the state sharded
// over the data-parallel ranks) override the virtual methods; the trainer
// holds a TrainOptimizer& either way.
//
// Threading: thread-compatible; owns the optimizer state.
#ifndef MOERL_TRAINER_OPTIMIZER_H_
#define MOERL_TRAINER_OPTIMIZER_H_

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "trainer/lr_schedule.h"
#include "trainer/trainer_settings.h"

namespace torch::optim {
class AdamW;
}

namespace moerl {

struct OptimizerStepResult {
  double grad_norm = 0;  // before clipping
  double lr = 0;
  bool updated = false;
};

class TrainOptimizer {
 public:
  TrainOptimizer(std::vector<at::Tensor> params, const OptimizerSettings& settings, LrSchedule schedule);
  virtual ~TrainOptimizer();

  virtual void ZeroGrad();
  double LearningRate(int64_t train_step) const;
  virtual OptimizerStepResult Step(int64_t train_step);
  // The same with the clipping done by `clip(max_norm)`, which scales the
  // gradients and returns the norm before (data/expert parallel: the global
  // norm, trainer/parallel/parallelize.h ClipGradNorm).
  virtual OptimizerStepResult Step(int64_t train_step, const std::function<double(double)>& clip);

  // Whether Step(train_step) itself reduces the gradients over the
  // data-parallel ranks and clips with the global norm (the distributed
  // optimizer); else the caller reduces (GradientReducer) and passes the
  // global clip.
  virtual bool ReducesGradients() const { return false; }

  virtual absl::Status Save(const std::string& path) const;
  virtual absl::Status Load(const std::string& path);

  // AdamW's state of one parameter, shaped like the parameter this rank
  // holds: the moments (zeros before the first step) and, under mixed
  // precision, the fp32 master copy (undefined when the parameters are fp32).
  struct ParameterOptimizerState {
    at::Tensor exp_avg, exp_avg_sq, master;
  };
  // One per parameter, in constructor order; copies, not views. A sharded
  // optimizer gathers its shards: a collective, every rank calls it.
  virtual std::vector<ParameterOptimizerState> ExportParameterStates() const;
  // Replaces the state with `states` (one per parameter, in constructor
  // order, shaped like them) and AdamW's step count with `adam_step` (0: no
  // step taken, moments unused). A missing master starts from the
  // parameter. InvalidArgument naming the parameter for a count or shape
  // that does not match. A sharded optimizer keeps its shard of each.
  virtual absl::Status ImportParameterStates(const std::vector<ParameterOptimizerState>& states,
                                             int64_t adam_step);
  // AdamW steps taken (the bias correction's t); 0 before the first.
  virtual int64_t adam_step() const;

  // The fp32 master copies (same order as the parameters); empty when every
  // parameter is fp32 (AdamW then updates them in place).
  const std::vector<at::Tensor>& master_weights() const { return masters_; }
  // The masters shaped like the parameters this rank holds (a collective
  // for a sharded optimizer: every rank calls it); empty without masters.
  virtual std::vector<at::Tensor> FullMasterWeights() const { return masters_; }

  // Bytes of optimizer state this rank keeps (moments and masters).
  virtual int64_t StateBytes() const;

 protected:
  // For subclasses that keep their own state: no AdamW, no masters here.
  struct NoState {};
  TrainOptimizer(std::vector<at::Tensor> params, const OptimizerSettings& settings, LrSchedule schedule, NoState);
  const std::vector<at::Tensor>& params() const { return params_; }
  const OptimizerSettings& settings() const { return settings_; }

 private:
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> masters_;
  OptimizerSettings settings_;
  LrSchedule schedule_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_OPTIMIZER_H_
