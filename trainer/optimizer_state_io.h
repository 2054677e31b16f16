// The optimizer state of a checkpoint in a layout-independent form: AdamW's
// moments (and the fp32 master weights under mixed precision) as whole
// tensors under the Hugging Face names of the weights they belong to, so
// that a run may resume under another parallel layout.
//
//   <checkpoint>/optimizer/state.json     {"format": "moerl-optimizer-state",
//                                           "version": 1, "adam_step": N,
//                                           "master_weights": true|false}
//   <checkpoint>/optimizer/exp_avg/       HF folder (fp32 safetensors + config.json)
//   <checkpoint>/optimizer/exp_avg_sq/    the same
//   <checkpoint>/optimizer/master/        the same, only with master weights
//
// Saving gathers what every rank holds the way FullModel gathers weights
// (experts over ep and etp, tensor-parallel slices over tp; data-parallel
// replicas hold the same values); loading gives each rank only its part
// (LoadHfBindings: its experts' tensors and the bytes of its slices).
// Both go through TrainOptimizer::Export/ImportParameterStates only, so any
// optimizer offering those calls (e.g. a sharded one) plugs in.
//
//   // every rank:
//   GatheredOptimizerState gathered = GatherOptimizerState(*model, optimizer, parallel);
//   if (rank == 0) MOERL_RETURN_IF_ERROR(WriteOptimizerState(gathered, staging + "/optimizer"));
//   // on resume, every rank, under any layout:
//   MOERL_RETURN_IF_ERROR(ReadOptimizerState(step_dir + "/optimizer", *model, &optimizer));
//
// GatherOptimizerState is a collective (every rank of `parallel`, in the
// same order); the others touch only files. Thread-compatible.
#ifndef MOERL_TRAINER_OPTIMIZER_STATE_IO_H_
#define MOERL_TRAINER_OPTIMIZER_STATE_IO_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/model.h"
#include "trainer/optimizer.h"
#include "trainer/parallel/parallel_state.h"

namespace moerl {

// Whole fp32 models whose weights are the state of the same weights of the
// trained model; `master` is null when the parameters are fp32.
struct GatheredOptimizerState {
  std::shared_ptr<Qwen3Model> exp_avg, exp_avg_sq, master;
  int64_t adam_step = 0;
};

GatheredOptimizerState GatherOptimizerState(Qwen3Model& model, const TrainOptimizer& optimizer,
                                            const ParallelState& parallel);

// Writes the layout above into `dir` (created; its parent must exist).
absl::Status WriteOptimizerState(const GatheredOptimizerState& state, const std::string& dir);

// Whether `dir` holds the layout above (its state.json exists).
bool HasOptimizerState(const std::string& dir);

// Reads this rank's part into `optimizer` (built over model.parameters()).
// DataLoss naming the file for a bad state.json; the loaders' errors (file,
// tensor, byte offset) for bad tensors.
absl::Status ReadOptimizerState(const std::string& dir, Qwen3Model& model, TrainOptimizer* optimizer,
                                HfLoadStats* stats = nullptr);

}  // namespace moerl

#endif  // MOERL_TRAINER_OPTIMIZER_STATE_IO_H_
