// The distributed optimizer (Megatron's, ZeRO-1/2): AdamW whose state is
// sharded over the data-parallel ranks that hold the same parameters.
//
//   auto opt = std::make_unique<DistributedOptimizer>(*model, state, settings.optimizer, schedule);
//   opt->ZeroGrad();
//   loss_share.backward();                          // this rank's share, as for GradientReducer
//   OptimizerStepResult r = opt->Step(train_step);  // reduce-scatter, global norm, clip, AdamW, all-gather
//
// The parameters are split as GradientReducer splits them (SplitParameters):
// dense ones shard over tp-dp-cp (the group their gradients are summed
// over), tensor-sharded ones over dp-cp, experts over edp. Each list is cut
// into buckets of whole parameters in model order (bucket_numel elements or
// one parameter, whichever is larger); a bucket's flat fp32 buffer is padded
// to a multiple of the group size n and rank r of the group owns elements
// [r S, (r+1) S), S = padded / n. Per step:
//   1. a tied embedding's two copies (first and last pipeline stage) get the
//      sum of their gradients, as in GradientReducer;
//   2. each bucket's gradients (fp32) are reduce-scattered over its group:
//      every rank receives the sum of its shard, summed in member order;
//   3. the global L2 norm is the shards' squares (fp64) summed over the
//      group and then over the ranks holding other parts of the model (pp
//      for dense, tp-pp for tensor-sharded, etp-ep-pp for experts), each
//      element counted once (the tied copy not at all); clipped like
//      torch::nn::utils::clip_grad_norm_; a non-finite norm skips the step;
//   4. AdamW (torch::optim::AdamW's formula, elementwise) on the shard: the
//      fp32 master shard when the parameters are bf16, else the shard cut
//      from the parameters; only the shard's exp_avg, exp_avg_sq (and
//      master) are kept;
//   5. the updated shards are all-gathered (fp32) and copied into the
//      parameters (rounded to their dtype).
// The model's .grad are consumed: after Step they are undefined.
//
// AdamW is elementwise, so the result equals one process up to the order in
// which the ranks' gradients are summed. Every rank of `state` calls Step
// and the methods marked collective, in the same order.
// Thread-compatible.
#ifndef MOERL_TRAINER_PARALLEL_DISTRIBUTED_OPTIMIZER_H_
#define MOERL_TRAINER_PARALLEL_DISTRIBUTED_OPTIMIZER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "trainer/lr_schedule.h"
#include "trainer/model/model.h"
#include "trainer/optimizer.h"
#include "trainer/parallel/parallel_state.h"
#include "trainer/trainer_settings.h"

namespace moerl {

class DistributedOptimizer : public TrainOptimizer {
 public:
  // `model` as ParallelizeQwen3 left it, its parameters in their final dtype
  // and device; `state` must outlive the optimizer. Megatron's default bucket
  // is max(4e7, 1e6 dp) parameters.
  DistributedOptimizer(Qwen3Model& model, const ParallelState& state, const OptimizerSettings& settings,
                       LrSchedule schedule, int64_t bucket_numel = 40'000'000);
  ~DistributedOptimizer() override;

  void ZeroGrad() override;
  // Collective. Throws CollectiveError when a peer fails.
  OptimizerStepResult Step(int64_t train_step) override;
  // Not used: the clip is computed on the shards (ReducesGradients). Aborts.
  OptimizerStepResult Step(int64_t train_step, const std::function<double(double)>& clip) override;
  bool ReducesGradients() const override { return true; }

  // This rank's shards (its own file per rank); Load checks that the file was
  // written by the same rank of the same layout (DataLoss naming the path).
  absl::Status Save(const std::string& path) const override;
  absl::Status Load(const std::string& path) override;

  // Collective: the fp32 masters gathered into the parameters' shapes.
  std::vector<at::Tensor> FullMasterWeights() const override;
  int64_t StateBytes() const override;
  // Collective (all-gather of every shard).
  std::vector<ParameterOptimizerState> ExportParameterStates() const override;
  absl::Status ImportParameterStates(const std::vector<ParameterOptimizerState>& states, int64_t adam_step) override;
  int64_t adam_step() const override { return step_; }

  // Elements of the flattened parameters this rank's shards cover (padding
  // included), for tests and the memory figures.
  int64_t ShardNumel() const;

 private:
  struct Bucket {
    std::vector<size_t> params;     // indices into params()
    std::vector<int64_t> offsets;   // each one's start in the flat bucket
    int64_t numel = 0;              // unpadded
    int64_t shard = 0;              // S: padded numel / group size
    int64_t excluded_begin = 0, excluded_end = 0;  // flat range left out of the norm (a tied copy)
    at::Tensor exp_avg, exp_avg_sq, master;        // [S] fp32 (master: mixed precision only)
  };
  struct ShardedList {
    std::shared_ptr<const ProcessGroup> group;     // shards and reduce-scatter
    std::shared_ptr<const ProcessGroup> across;    // ranks holding other parts of the model
    std::vector<Bucket> buckets;
  };

  // The flat fp32 bucket of `values(i)` for each of its parameters, padded.
  at::Tensor Flatten(const Bucket& b, const ShardedList& list,
                     const std::function<at::Tensor(size_t)>& values) const;
  // This rank's [S] slice of a padded flat bucket.
  at::Tensor MyShard(const Bucket& b, const ShardedList& list, const at::Tensor& flat) const;
  // A [S] shard gathered over the group, cut into the bucket's parameters.
  std::vector<at::Tensor> Gather(const Bucket& b, const ShardedList& list, const at::Tensor& shard) const;

  std::vector<ShardedList> lists_;
  std::shared_ptr<const ProcessGroup> embedding_group_;
  int64_t tied_copy_ = -1;  // index of the tied embedding's parameter when it needs the embedding-group sum
  bool low_precision_ = false;
  int64_t step_ = 0;
  std::string layout_;  // checked by Load
};

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_DISTRIBUTED_OPTIMIZER_H_
