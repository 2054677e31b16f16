// Recover checkpoints: checkpoints/step-<N>/ holds everything a run needs to
// continue after training step N-1 (N steps done, policy version N):
//
//   weights/         the model in Hugging Face layout, in the training dtype
//   optimizer/       AdamW state as whole tensors under the weights' HF names
//                    (exp_avg/, exp_avg_sq/, with fp32 master weights under
//                    bf16 master/, and state.json with the adam step;
//                    trainer/optimizer_state_io.h)
//   manifest.pb      CheckpointManifest: step, version, data position (next
//                    batch index for GRPO, epoch/index for SFT), seed, RNG
//                    state, the allocation_mode it was written under, and
//                    every file above with its size and CRC32C
//
// Nothing in it depends on the parallel layout: a run resumes under another
// allocation_mode (each rank reads its experts and slices; logged).
// Checkpoints from before (optimizer.pt, plus optimizer-rank-<r>.pt per
// rank under ep or tp) still load under the layout that wrote them; another
// layout is FailedPrecondition naming it.
//
// Published atomically: written into a hidden `.step-<N>.staging-<pid>`
// sibling, fsynced, renamed (a step-<N> already there is first renamed to a
// hidden `.step-<N>.old-<pid>`). A folder without a valid manifest, or whose
// files do not match it, is not complete and never resumed from. Hidden
// names are never read; a writer killed midway leaves them behind, and the
// next trainer removes them before it writes (RemoveAbandonedCheckpointFiles).
//
//   MOERL_RETURN_IF_ERROR(SaveTrainerCheckpoint(dir, *model, optimizer, state));   // one process
//   // N ranks: every rank gathers, rank 0 writes
//   GatheredOptimizerState moments = GatherOptimizerState(*model, optimizer, parallel);
//   MOERL_RETURN_IF_ERROR(SaveTrainerCheckpoint(dir, *FullModel(model, parallel), moments, state));
//   MOERL_ASSIGN_OR_RETURN(auto removed, PruneCheckpoints(dir, /*keep=*/2));
//   MOERL_ASSIGN_OR_RETURN(auto latest, FindLatestCheckpoint(dir));   // nullopt: none
//   MOERL_RETURN_IF_ERROR(LoadTrainerCheckpoint(*latest, model.get(), &optimizer, &state));
//
// Thread-compatible.
#ifndef MOERL_TRAINER_CHECKPOINT_H_
#define MOERL_TRAINER_CHECKPOINT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/model/model.h"
#include "trainer/optimizer.h"
#include "trainer/optimizer_state_io.h"

namespace moerl {

struct TrainerState {
  int64_t step = 0;              // training steps completed (= policy version)
  // Data position. GRPO: data_index is the next batches/<NNNNNN>.rec.
  // SFT: epoch and index of the next problem.
  int64_t data_epoch = 0;
  int64_t data_index = 0;
  int64_t seed = 1;
  std::string allocation_mode;
};

std::string CheckpointStepDir(const std::string& checkpoints_dir, int64_t step);

// `model` must hold every expert and whole tensors (FullModel); the
// optimizer state is gathered (GatherOptimizerState).
absl::Status SaveTrainerCheckpoint(const std::string& checkpoints_dir, Qwen3Model& model,
                                   const GatheredOptimizerState& optimizer_state, const TrainerState& state);
// One process: gathers `optimizer`'s state (a copy) and saves.
absl::Status SaveTrainerCheckpoint(const std::string& checkpoints_dir, Qwen3Model& model,
                                   const TrainOptimizer& optimizer, const TrainerState& state);

// The step-<N> folder with the largest N whose manifest checks out; nullopt
// when there is none (a missing folder counts as none).
absl::StatusOr<std::optional<std::string>> FindLatestCheckpoint(const std::string& checkpoints_dir);

// Keeps the newest `keep` complete checkpoints (manifest and files check
// out, as FindLatestCheckpoint checks them) and removes every step-<N>
// folder older than the last of them; so the checkpoint recovery would
// resume from always stays. Folders newer than it that do not check out are
// left for people to look at. Each removal renames the folder to a hidden
// `.step-<N>.removing-<pid>` first (a name recovery never reads), then
// deletes it: a crash midway leaves no step-<N> folder that is half gone.
// Hidden `.step-*.removing-*` folders left by such a crash are deleted too.
// keep < 1: keep every checkpoint. Returns the removed steps, oldest first.
// Reads every file of the checkpoints it keeps (their CRC32C).
absl::StatusOr<std::vector<int64_t>> PruneCheckpoints(const std::string& checkpoints_dir, int64_t keep);

// OK when `step_dir` has a manifest that parses and every file it lists
// matches its size and CRC32C; else DataLoss or NotFound naming the file.
absl::Status VerifyTrainerCheckpoint(const std::string& step_dir);

// Removes what killed writers leave in `checkpoints_dir`: hidden
// `.step-<N>.staging-<pid>` / `.step-<N>.old-<pid>` folders and other ranks'
// pending `.optimizer-rank-<r>.pt.step-<N>` files (of the per-rank
// format's writers). Call it before any
// checkpoint of this run is being written (the trainer's rank 0, at start).
// Returns the names removed; a missing folder is none.
absl::StatusOr<std::vector<std::string>> RemoveAbandonedCheckpointFiles(const std::string& checkpoints_dir);

// Loads weights and optimizer state (a model holding experts or slices
// reads only those), RNG state and the trainer state. `state->allocation_mode`
// is the layout resuming: when it differs from the writer's (the manifest's)
// the resume reshards and says so in the log. A checkpoint of the old format
// loads `optimizer_file` (default optimizer.pt) and only under the layout
// that wrote it.
absl::Status LoadTrainerCheckpoint(const std::string& step_dir, Qwen3Model* model,
                                   TrainOptimizer* optimizer, TrainerState* state,
                                   const std::string& optimizer_file = "");

}  // namespace moerl

#endif  // MOERL_TRAINER_CHECKPOINT_H_
