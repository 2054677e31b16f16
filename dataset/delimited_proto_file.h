// INTERIM stand-in for common/transport/record_io.h (RecordWriter /
// RecordReader), which is being built in parallel: a file of varint
// length-delimited Protobuf messages (protobuf's own delimited format, readable
// with google::protobuf::util::ParseDelimitedFromZeroCopyStream), written to
// "<path>.tmp" and renamed to <path> on Close. It has the same shape as
// RecordWriter/RecordReader (Create/WriteMessage/Close, Open/Next), so the
// feeder and scorer switch to record files by changing one type each; it has
// no magic, version or checksums, which record files add.
//
//   MOERL_ASSIGN_OR_RETURN(auto writer, DelimitedProtoWriter::Create(path));
//   MOERL_RETURN_IF_ERROR(writer->WriteMessage(prompt));
//   MOERL_RETURN_IF_ERROR(writer->Close());
//
//   MOERL_ASSIGN_OR_RETURN(auto reader, DelimitedProtoReader::Open(path));
//   std::string payload;
//   while (true) { MOERL_ASSIGN_OR_RETURN(bool more, reader->Next(&payload)); if (!more) break; }
//
// Not thread-safe; one object per thread. Owns its file descriptor.
#ifndef MOERL_DATASET_DELIMITED_PROTO_FILE_H_
#define MOERL_DATASET_DELIMITED_PROTO_FILE_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"

namespace moerl {

class DelimitedProtoWriter {
 public:
  static absl::StatusOr<std::unique_ptr<DelimitedProtoWriter>> Create(const std::string& path);
  absl::Status Write(absl::string_view payload);
  absl::Status WriteMessage(const google::protobuf::MessageLite& message);
  // Flushes, then renames "<path>.tmp" to <path>.
  absl::Status Close();

 private:
  explicit DelimitedProtoWriter(std::string path);
  std::string path_;
  std::ofstream out_;
  bool closed_ = false;
};

class DelimitedProtoReader {
 public:
  static absl::StatusOr<std::unique_ptr<DelimitedProtoReader>> Open(const std::string& path);
  // Next payload into *payload: true, or false at a clean end of file. A
  // truncated length or payload is a DataLoss error naming the byte offset.
  absl::StatusOr<bool> Next(std::string* payload);

 private:
  explicit DelimitedProtoReader(std::string path);
  std::string path_;
  std::ifstream in_;
  uint64_t offset_ = 0;
};

}  // namespace moerl

#endif  // MOERL_DATASET_DELIMITED_PROTO_FILE_H_
