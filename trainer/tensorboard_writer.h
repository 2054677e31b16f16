// TensorBoard event files (the `tensorboard` package reads them): one
// `events.out.tfevents.<seconds>.<host>` per writer in the run's
// tensorboard/ folder, holding a version record, then one Event with a
// scalar Summary per step. Torch-free; the few Protobuf fields are encoded by
// hand (no TensorFlow protos here):
//
//   record  = u64 length | u32 masked_crc32c(length) | data | u32 masked_crc32c(data)
//   masked  = ((crc >> 15) | (crc << 17)) + 0xa282ead8
//   Event   = wall_time (1, double) | step (2, int64) | file_version (3) | summary (5)
//             | session_log (7)
//   Summary = repeated Value (1);  Value = tag (1, string) | simple_value (2, float)
//   SessionLog = status (1, enum: START = 1)
//
//   MOERL_ASSIGN_OR_RETURN(auto tb, TensorBoardWriter::Create(run_dir + "/tensorboard"));
//   MOERL_RETURN_IF_ERROR(tb->WriteScalars(step, {{"ppo_actor/task_reward/avg", 0.5}}));
//
// Each WriteScalars appends and flushes. Thread-compatible.
#ifndef MOERL_TRAINER_TENSORBOARD_WRITER_H_
#define MOERL_TRAINER_TENSORBOARD_WRITER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace moerl {

class TensorBoardWriter {
 public:
  static absl::StatusOr<std::unique_ptr<TensorBoardWriter>> Create(const std::string& dir);
  ~TensorBoardWriter();
  // Non-finite values are skipped.
  absl::Status WriteScalars(int64_t step, const std::map<std::string, double>& values);
  // A SessionLog START at `step`: readers drop the events of every earlier
  // file with step >= `step` (a resumed run that redoes steps after its
  // checkpoint writes this first, so each step shows once, the redone one).
  absl::Status WriteSessionStart(int64_t step);
  const std::string& path() const { return path_; }

 private:
  TensorBoardWriter(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  absl::Status WriteRecord(const std::string& data);
  std::string path_;
  int fd_;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_TENSORBOARD_WRITER_H_
