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
// Publishing is atomic for the folder as a whole. The writer fills a hidden
// sibling `.<name>.staging-<pid>` (shards, index, extra files such as
// config.json), fsyncs every file and the folder, then renames it onto `dir`:
// an existing `dir` is swapped out in one step (renameat2 RENAME_EXCHANGE) and
// removed after, so `dir` always holds either the old or the new checkpoint,
// complete. (Where the file system cannot exchange, the old folder is renamed
// aside to `.<name>.old-<pid>` first; a crash between the two renames leaves
// `dir` missing, never half-written, and the next write to `dir` renames the
// set-aside folder back before it starts.) A crashed writer leaves only its hidden
// staging folder, which readers never look at and the next write to the same
// `dir` removes. `dir` is replaced as a whole: files in it that this write
// does not produce do not survive. One writer per `dir` at a time.
//
// Readers pin the folder (one directory descriptor for the index and every
// shard), so an Open racing a publish reads one checkpoint, old or new; it may
// fail (NotFound) if the old one is removed under it, and can then retry.
//
// Threading: immutable after Open, safe to read concurrently; spans live as
// long as the CheckpointDir.
#ifndef MOERL_COMMON_SAFETENSORS_CHECKPOINT_DIR_H_
#define MOERL_COMMON_SAFETENSORS_CHECKPOINT_DIR_H_

#include <functional>
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

struct CheckpointWriteOptions {
  uint64_t max_shard_bytes = uint64_t{5} << 30;
  // Small files published together with the tensors, by plain file name,
  // e.g. {"config.json", text}.
  std::map<std::string, std::string> extra_files;
  // Tests: runs once everything is written and fsynced in the staging
  // folder, just before the rename. A non-OK status abandons the write (the
  // staging folder is removed and the status returned); a hook that kills the
  // process simulates a crash before publishing.
  std::function<absl::Status(const std::string& staging_dir)> before_publish;
};

// Publishes `tensors` as the checkpoint folder `dir` (parents must exist):
// model.safetensors, or, when they exceed max_shard_bytes,
// model-0000i-of-0000N.safetensors plus model.safetensors.index.json, and the
// extra files. Tensors keep the given order across shards. Atomic as
// described above; InvalidArgument for a bad tensor or extra file name,
// FailedPrecondition if `dir` exists and is not a folder, other codes from
// the file system with the path that failed.
absl::Status WriteCheckpointDir(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                                const CheckpointWriteOptions& options);
absl::Status WriteCheckpointDir(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                                uint64_t max_shard_bytes);

}  // namespace moerl

#endif  // MOERL_COMMON_SAFETENSORS_CHECKPOINT_DIR_H_
