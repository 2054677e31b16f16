// FileMessageSource: a record file of messages seen as a consumer-only
// MessageRing whose producers have all closed, so that the reward scorer can
// read Trajectory messages from a file exactly as it reads them from a ring
// ("the scorer from a record file"; common/transport/record_io.h).
//
//   MOERL_ASSIGN_OR_RETURN(auto source, FileMessageSource::Open("trajectories.rec"));
//   scorer.Run(*source, &report);
//
// Pop returns the next message, then kOutOfRange at the end of the file; a
// torn file is kDataLoss naming the byte offset. Push is kUnimplemented; Ack
// is a no-op (plain delivery). Not thread-safe.
#ifndef MOERL_REWARD_FILE_MESSAGE_SOURCE_H_
#define MOERL_REWARD_FILE_MESSAGE_SOURCE_H_

#include <memory>
#include <string>

#include "common/transport/message_ring.h"
#include "common/transport/record_io.h"

namespace moerl {

class FileMessageSource : public MessageRing {
 public:
  static absl::StatusOr<std::unique_ptr<FileMessageSource>> Open(const std::string& path);

  absl::Status Push(absl::string_view, absl::Duration) override;
  absl::Status TryPush(absl::string_view) override;
  absl::Status CloseProducer() override { return absl::OkStatus(); }
  absl::StatusOr<RingMessage> Pop(absl::Duration) override { return TryPop(); }
  absl::StatusOr<RingMessage> TryPop() override;
  absl::Status Ack(uint64_t) override { return absl::OkStatus(); }
  DeliveryMode delivery_mode() const override { return DeliveryMode::kPlain; }
  RingStats Stats() const override { return stats_; }

 private:
  explicit FileMessageSource(std::unique_ptr<RecordReader> reader);
  std::unique_ptr<RecordReader> reader_;
  RingStats stats_;
};

}  // namespace moerl

#endif  // MOERL_REWARD_FILE_MESSAGE_SOURCE_H_
