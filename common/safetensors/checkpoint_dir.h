// A Hugging Face checkpoint folder: one `model.safetensors`, or shards listed
// in `model.safetensors.index.json` ({"metadata": {...}, "weight_map":
// {tensor name: shard file}}). The weight_map is the authority; every shard is
// opened (mmapped) once and must hold exactly the tensors the map gives it.
//
//   MOERL_ASSIGN_OR_RETURN(auto ckpt, CheckpointDir::Open("/models/qwen3"));
//   MOERL_ASSIGN_OR_RETURN(TensorRef ref, ckpt->Get("model.norm.weight"));
//   ref.info->shape; ref.bytes;            // mmapped, maybe unaligned
//
//   // Writing: shards of at most max_shard_bytes (a single file when it fits).
//   MOERL_RETURN_IF_ERROR(WriteCheckpointDir(dir, tensors, 5 << 30));
//
// Threading: immutable after Open, safe to read concurrently; spans live as
// long as the CheckpointDir.
#ifndef MOERL_COMMON_SAFETENSORS_CHECKPOINT_DIR_H_
#define MOERL_COMMON_SAFETENSORS_CHECKPOINT_DIR_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/safetensors/safetensors.h"

namespace moerl {

struct TensorRef {
  const TensorInfo* info = nullptr;
  absl::Span<const uint8_t> bytes;
  const std::string* file = nullptr;  // path of the shard holding it
};

class CheckpointDir {
 public:
  // NotFound if the folder has neither an index nor model.safetensors;
  // InvalidArgument for a malformed index, a missing shard, a tensor missing
  // from its shard or present in a shard the map does not name.
  static absl::StatusOr<std::unique_ptr<CheckpointDir>> Open(const std::string& dir);

  // Tensor names, sorted.
  std::vector<std::string> Names() const;
  // NotFound naming the tensor and the folder.
  absl::StatusOr<TensorRef> Get(const std::string& name) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<const SafetensorsFile*, const TensorInfo*>> tensors_;
};

// Writes `tensors` into `dir` (created if missing) as model.safetensors, or,
// when they exceed max_shard_bytes, as model-0000i-of-0000N.safetensors plus
// model.safetensors.index.json. Tensors keep the given order across shards.
absl::Status WriteCheckpointDir(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                                uint64_t max_shard_bytes);

}  // namespace moerl

#endif  // MOERL_COMMON_SAFETENSORS_CHECKPOINT_DIR_H_
