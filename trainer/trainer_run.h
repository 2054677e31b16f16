// The trainer binary as library calls, for one rank: load the configuration,
// build or load the model, then train step by step on the run folder
// (docs/run_folder.md, docs/trainer.md).
//
//   MOERL_ASSIGN_OR_RETURN(TrainerSettings settings, LoadTrainerSettings(args));
//   TrainerReport report;
//   MOERL_RETURN_IF_ERROR(RunTrainer(settings, should_stop, &report));
//
// What a run does:
//   1. the model: LoadHfModel(actor.path), or with actor.init_from_scratch
//      a Qwen3Model from <actor.path>/config.json with InitializeWeights(seed);
//      cast to actor.dtype;
//   2. recover.mode=auto/on: resume from the newest complete
//      checkpoints/step-<N>/ (weights, optimizer, RNG, data position);
//   3. publish weights/v<version> when LATEST is absent (v0 on a fresh run);
//   4. per step: the next batches/<NNNNNN>.rec (GRPO; waiting for it) or the
//      next train_dataset.batch_size problems of trainer.sft_dataset (SFT);
//      RunTrainStep; publish v<step+1> (and LATEST, pruning to
//      trainer.keep_weight_versions); append a line to stats.jsonl and a
//      short one to stderr; every saver.freq_steps a checkpoint; every
//      evaluator.freq_steps an evaluation;
//   5. stop after total_train_steps, at the end of the data (a fixed batch
//      folder or the SFT epochs), or when should_stop() (checked between
//      steps and while waiting for a batch).
// A bad batch file stops the run with its InvalidArgument (nothing is
// trained on it). Policy version after step N (0-based) is N+1.
//
// On N ranks (docs/parallel.md): RunTrainer builds the ParallelState of the
// training allocation of allocation_mode from the launcher's variables (one
// process without them, or with allocation_mode empty); a layout the trainer
// cannot run yet (cp, etp other than tp) is Unimplemented before any rank
// meets another. Every rank reads the same batch files and trains its data
// shard (trainer/train_step.h; the stages of a pipeline train it together);
// rank 0 alone writes stats.jsonl, tensorboard/, weights/ (gathering the
// experts, tensor slices and pipeline stages from the other ranks) and
// checkpoints/ (the optimizer state gathered from every rank, so that a run
// resumes under another layout). A
// failed collective (a dead rank) ends the run with Unavailable naming it.
// trainer.device (trainer/device.h) puts each rank on cuda:LOCAL_RANK, with
// NCCL for device tensors, or on the host.
// Thread: the caller's.
#ifndef MOERL_TRAINER_TRAINER_RUN_H_
#define MOERL_TRAINER_TRAINER_RUN_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/parallel/parallel_state.h"
#include "trainer/trainer_settings.h"

namespace moerl {

struct TrainerReport {
  int64_t first_step = 0;   // step the run started at (after a resume)
  int64_t steps_done = 0;   // steps completed in total (= policy version)
  double last_loss = 0;
  double last_reward = 0;
};

// `--config <yaml> key=value ...` (args without argv[0]) -> validated settings.
absl::StatusOr<TrainerSettings> LoadTrainerSettings(const std::vector<std::string>& args);

absl::Status RunTrainer(const TrainerSettings& settings, const std::function<bool()>& should_stop,
                        TrainerReport* report);

// The same on the ranks of `parallel` (tests: RunInProcessRanks). Every rank
// of the layout calls it with the same settings. The groups of `parallel`
// are taken to carry host tensors only (Gloo): with several ranks,
// trainer.device=auto trains on the host and cuda is FailedPrecondition.
absl::Status RunTrainer(const TrainerSettings& settings, const ParallelState& parallel,
                        const std::function<bool()>& should_stop, TrainerReport* report);

}  // namespace moerl

#endif  // MOERL_TRAINER_TRAINER_RUN_H_
