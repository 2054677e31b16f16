// Publishes policy versions into the run's weights/ folder
// (docs/run_folder.md): weights/v<N>/ in Hugging Face layout with
// probe.json and the tokenizer files, published atomically as a folder, then
// weights/LATEST replaced, then versions beyond the newest `keep` removed
// unless a reader pins them (common/weights_dir.h).
//
//   WeightPublisher publisher({.weights_dir = run + "/weights", .dtype = at::kBFloat16});
//   MOERL_RETURN_IF_ERROR(publisher.Publish(*model, /*version=*/3));
//
// probe.json: log-probs these weights give ProbeSequences(vocab) at
// temperature 1, computed on the weights as published (a copy in the
// published dtype when it differs from the training dtype).
// Thread-compatible.
#ifndef MOERL_TRAINER_WEIGHT_PUBLISHER_H_
#define MOERL_TRAINER_WEIGHT_PUBLISHER_H_

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/model/model.h"

namespace moerl {

inline constexpr uint32_t kProbeFormatVersion = 1;

struct WeightPublisherOptions {
  std::string weights_dir;
  c10::ScalarType dtype = at::kFloat;
  uint64_t max_shard_bytes = uint64_t{5} << 30;
  int64_t keep = 3;
  // Folder whose tokenizer files (tokenizer.json, tokenizer_config.json,
  // vocab.json, merges.txt, special_tokens_map.json, generation_config.json)
  // are copied beside the weights when present; "" for none.
  std::string tokenizer_dir;
};

// A few fixed token sequences (deterministic in vocab_size).
std::vector<std::vector<int64_t>> ProbeSequences(int64_t vocab_size);

// {"format_version": 1, "version": N, "sequences": [{"input_ids", "logprobs"}]}
absl::StatusOr<std::string> ProbeJson(Qwen3Model& model, int64_t version);

class WeightPublisher {
 public:
  explicit WeightPublisher(WeightPublisherOptions options);
  // Writes v<version>/, points LATEST at it, prunes. Versions removed are
  // logged.
  absl::Status Publish(Qwen3Model& model, int64_t version);
  const WeightPublisherOptions& options() const { return options_; }

 private:
  WeightPublisherOptions options_;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_WEIGHT_PUBLISHER_H_
