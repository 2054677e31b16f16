#include "trainer/train_batch.h"

namespace moerl {

std::vector<TrainSequence> FromTrajectoryBatch(const proto::TrajectoryBatch& batch) {
  std::vector<TrainSequence> seqs;
  seqs.reserve(batch.trajectories_size());
  for (const proto::Trajectory& t : batch.trajectories()) {
    TrainSequence s;
    s.tokens.assign(t.prompt_tokens().begin(), t.prompt_tokens().end());
    s.prompt_len = t.prompt_tokens_size();
    s.tokens.insert(s.tokens.end(), t.output_tokens().begin(), t.output_tokens().end());
    s.behave_logp.assign(t.output_logprobs().begin(), t.output_logprobs().end());
    s.versions.assign(t.output_versions().begin(), t.output_versions().end());
    s.reward = t.reward();
    s.group_id = t.group_id();
    s.no_eos = t.finish_reason() != proto::FINISH_REASON_STOP;
    s.routed_experts.assign(t.routed_experts().begin(), t.routed_experts().end());
    s.routed_layers = t.routed_experts_layers();
    s.routed_top_k = t.routed_experts_top_k();
    seqs.push_back(std::move(s));
  }
  return seqs;
}

std::vector<int64_t> SequenceLengths(const std::vector<TrainSequence>& seqs) {
  std::vector<int64_t> lengths;
  lengths.reserve(seqs.size());
  for (const TrainSequence& s : seqs) lengths.push_back(s.Length());
  return lengths;
}

}  // namespace moerl
