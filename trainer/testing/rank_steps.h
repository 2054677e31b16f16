// The trainer's step loop on one rank without a run folder, for the layout
// matrix test and the parallel benchmarks: the model of `parallel` built and
// loaded as RunTrainer builds it (ParallelizeQwen3, then this rank's part of
// the HF weights of settings.actor_path), AdamW, and GRPO steps
// (RunTrainStep) on the given batches. After the first step every gradient,
// after the last every weight, gathered whole (GatherFullModel: each rank
// writes its slices and experts into a zero tensor, summed over the ranks
// that split it, so the whole tensor holds each rank's shard at its place
// and a comparison with one process compares every rank's shard with its
// slice). Also the bytes each group sent in each step and in the gathering,
// and each step's wall time.
//
//   auto batches = ReadBatchFiles(dir);
//   MOERL_ASSIGN_OR_RETURN(RankStepsResult r, RunRankSteps(settings, state, *batches));
//   r.losses[0]; r.first_grads.at("model.layers.0.self_attn.q_proj.weight");
//
// Every rank of `parallel` calls it with the same settings and batches.
// Thread-compatible; one call per rank thread.
#ifndef MOERL_TRAINER_TESTING_RANK_STEPS_H_
#define MOERL_TRAINER_TESTING_RANK_STEPS_H_

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/parallel/parallel_state.h"
#include "trainer/train_batch.h"
#include "trainer/trainer_settings.h"

namespace moerl {

struct RankStepsOptions {
  bool gather_gradients = true;  // first_grads
  bool gather_weights = true;    // final_weights
};

struct RankStepsResult {
  // Per step, as rank 0's stats.jsonl would hold them (the whole batch).
  std::vector<double> losses;  // ppo_actor/update/actor_loss (avg)
  std::vector<double> grad_norms;
  std::vector<double> step_seconds;  // RunTrainStep's wall time on this rank
  // Parameter name of the whole model -> the whole tensor.
  std::map<std::string, at::Tensor> first_grads;  // after step 0 (the last minibatch's, clipped)
  std::map<std::string, at::Tensor> final_weights;
  // Bytes sent by this rank per group kind: each step, gathering
  // first_grads, and gathering final_weights (FullModel, what publication
  // does after every step).
  std::vector<std::map<RankGroupKind, CommCounts>> step_comm;
  std::map<RankGroupKind, CommCounts> gather_comm, publish_comm;
};

absl::StatusOr<RankStepsResult> RunRankSteps(const TrainerSettings& settings, const ParallelState& parallel,
                                             const std::vector<std::vector<TrainSequence>>& batches,
                                             const RankStepsOptions& options = {});

// The batches of <dir>/NNNNNN.rec in order.
absl::StatusOr<std::vector<std::vector<TrainSequence>>> ReadBatchFiles(const std::string& dir);

// An HF folder at `dir`: kTestMoeDir's config.json with `layers` layers
// (layer 1 dense) and the integer keys of `changes` replaced, weights drawn
// from `seed` (InitializeWeights).
absl::Status WriteTinyMoe(const std::string& dir, int layers, uint64_t seed,
                          const std::map<std::string, int64_t>& changes = {});

// Differences of two CommBytes() snapshots.
std::map<RankGroupKind, CommCounts> CommDifference(const std::map<RankGroupKind, CommCounts>& after,
                                                   const std::map<RankGroupKind, CommCounts>& before);

}  // namespace moerl

#endif  // MOERL_TRAINER_TESTING_RANK_STEPS_H_
