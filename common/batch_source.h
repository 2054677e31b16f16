// BatchSource: the trainer's reader of `batches/<NNNNNN>.rec` (one
// TrajectoryBatch per record file, docs/run_folder.md), in number order.
//
//   BatchSource source({.dir = run_dir + "/batches", .vocab_size = 151936});
//   proto::TrajectoryBatch batch;
//   while (true) {
//     MOERL_ASSIGN_OR_RETURN(bool got, source.Next(should_stop, &batch));
//     if (!got) break;                 // stopped, or (fixed folder) at the end
//     Train(batch);                    // source.next_index() is the resume position
//   }
//
// Modes: `follow` waits (polling every poll_interval, checking should_stop)
// for the next number to appear, as behind a running reward scorer; without
// it the folder is fixed and the first missing number ends the stream.
// Writers publish complete files under their final name (link of a hidden
// `.batch-*` temporary), so a file that exists is read at once; hidden files
// are never read.
//
// Errors: every problem with a file is InvalidArgument whose message names
// the file, and where known the record, its byte offset and the field:
// damage found by record_io (torn, truncated, bad checksum), a file with no
// or more than one record, and a batch that fails ValidateTrajectoryBatch.
// Nothing of a bad file is returned. Torch-free and reward-free.
//
// Threading: one thread at a time.
#ifndef MOERL_COMMON_BATCH_SOURCE_H_
#define MOERL_COMMON_BATCH_SOURCE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/proto/trajectory.pb.h"

namespace moerl {

// Checks what the trainer relies on: format versions it knows, whole
// contiguous groups of batch.group_size ordered by sample_index, and per
// trajectory scored, non-empty prompt and output, logprobs/versions as long
// as the output, finite log-probs and reward, token ids in [0, vocab_size)
// (when vocab_size > 0), routed_experts of the declared shape. `where`
// prefixes the message; the message names the field.
absl::Status ValidateTrajectoryBatch(const proto::TrajectoryBatch& batch, int64_t vocab_size,
                                     const std::string& where);

struct BatchSourceOptions {
  std::string dir;
  int64_t start_index = 0;  // first file number to read (resume position)
  bool follow = true;
  absl::Duration poll_interval = absl::Milliseconds(100);
  int64_t vocab_size = 0;  // > 0: token ids are checked against it
};

class BatchSource {
 public:
  explicit BatchSource(BatchSourceOptions options);

  // True with *batch filled; false when should_stop() (follow mode) or at
  // the end of a fixed folder; InvalidArgument for a bad file (the position
  // does not advance past it).
  absl::StatusOr<bool> Next(const std::function<bool()>& should_stop, proto::TrajectoryBatch* batch);

  // The number of the next file to read.
  int64_t next_index() const { return next_index_; }
  // "<dir>/<NNNNNN>.rec".
  std::string PathOf(int64_t index) const;

  // Reads and validates one file.
  static absl::Status ReadBatchFile(const std::string& path, int64_t vocab_size,
                                    proto::TrajectoryBatch* batch);

 private:
  BatchSourceOptions options_;
  int64_t next_index_;
};

}  // namespace moerl

#endif  // MOERL_COMMON_BATCH_SOURCE_H_
