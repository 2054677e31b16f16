// TrainSequence: one prompt + completion as the trainer trains on it, and
// the conversion from a scored TrajectoryBatch (GRPO) into them. Torch-free.
//
//   std::vector<TrainSequence> seqs = FromTrajectoryBatch(batch);
//   seqs[0].tokens;        // prompt then completion
//   seqs[0].OutputLen();   // completion tokens: the ones with a loss
//
// Plain data; thread-compatible.
#ifndef MOERL_TRAINER_TRAIN_BATCH_H_
#define MOERL_TRAINER_TRAIN_BATCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/proto/trajectory.pb.h"

namespace moerl {

struct TrainSequence {
  std::vector<int64_t> tokens;  // prompt + completion
  int64_t prompt_len = 0;
  std::vector<float> behave_logp;  // one per completion token (GRPO)
  std::vector<int64_t> versions;   // one per completion token (GRPO)
  double reward = 0;
  // Sequences of one group share it (data parallelism keeps groups whole);
  // "" when the source has no groups.
  std::string group_id;
  bool no_eos = false;
  // Router replay: [completion tokens, layers, top_k] row-major, or empty.
  std::vector<int32_t> routed_experts;
  int64_t routed_layers = 0, routed_top_k = 0;

  int64_t Length() const { return static_cast<int64_t>(tokens.size()); }
  int64_t OutputLen() const { return Length() - prompt_len; }
};

// One TrainSequence per trajectory, in batch order (groups contiguous).
// The batch must have passed ValidateTrajectoryBatch.
std::vector<TrainSequence> FromTrajectoryBatch(const proto::TrajectoryBatch& batch);

std::vector<int64_t> SequenceLengths(const std::vector<TrainSequence>& seqs);

}  // namespace moerl

#endif  // MOERL_TRAINER_TRAIN_BATCH_H_
