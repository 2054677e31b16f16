#include "reward/file_message_source.h"

#include <utility>

#include "common/status.h"

namespace moerl {

FileMessageSource::FileMessageSource(std::unique_ptr<RecordReader> reader)
    : reader_(std::move(reader)) {
  stats_.producers_closed = 1;
}

absl::StatusOr<std::unique_ptr<FileMessageSource>> FileMessageSource::Open(
    const std::string& path) {
  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<RecordReader> reader,
                         RecordReader::Open(path));
  return std::unique_ptr<FileMessageSource>(new FileMessageSource(std::move(reader)));
}

absl::Status FileMessageSource::Push(absl::string_view, absl::Duration) {
  return absl::UnimplementedError("a FileMessageSource is read-only");
}

absl::Status FileMessageSource::TryPush(absl::string_view) {
  return absl::UnimplementedError("a FileMessageSource is read-only");
}

absl::StatusOr<RingMessage> FileMessageSource::TryPop() {
  RingMessage message;
  MOERL_ASSIGN_OR_RETURN(bool more, reader_->Next(&message.payload));
  if (!more) {
    stats_.end_of_stream = true;
    return absl::OutOfRangeError("end of file");
  }
  ++stats_.pushed;
  ++stats_.popped;
  return message;
}

}  // namespace moerl
