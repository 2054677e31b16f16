// Record files: Protobuf messages (or any byte strings) on disk, each framed
// and checksummed, published atomically. The format of scored batches
// (batches/<NNNNNN>.rec) and anything else that crosses nodes or crashes.
//
//   MOERL_ASSIGN_OR_RETURN(std::unique_ptr<RecordWriter> w, RecordWriter::Create(path));
//   MOERL_RETURN_IF_ERROR(w->WriteMessage(batch));
//   MOERL_RETURN_IF_ERROR(w->Close());   // fsync + rename: `path` appears, complete
//
//   MOERL_ASSIGN_OR_RETURN(std::unique_ptr<RecordReader> r, RecordReader::Open(path));
//   proto::TrajectoryBatch batch;
//   while (true) {
//     MOERL_ASSIGN_OR_RETURN(bool more, r->NextMessage(&batch));
//     if (!more) break;   // clean end: the end marker was read
//     ...
//   }
//
// File layout (all integers little-endian):
//   header   16 B  "MOERLREC" | u32 format_version (=1) | u32 crc32c(first 12 B)
//   record        u32 length | u32 crc32c(length field) | payload | u32 crc32c(payload)
//   ...
//   end           u32 0xFFFFFFFF | u32 crc32c(that) | u64 record_count | u32 crc32c(count)
// The end marker makes a file cut at a record boundary detectable: a file
// without it is reported as truncated, never read as a shorter valid file.
//
// Errors: a damaged file gives kDataLoss whose message names the file, the
// byte offset of the damaged header, record or end marker, and what was
// wrong; a file that is not a record file gives kInvalidArgument; no input
// crashes the reader (record_reader_fuzz). Records larger than
// kMaxRecordBytes are refused on both sides.
//
// Recovery: Options{.recover_truncated_tail = true} reads the valid prefix
// of a file that a crash cut short or left with garbage at the end (for
// example a writer's temporary file); at the first damaged record Next
// returns false and dropped_tail() says what was dropped and where.
//
// Threading and ownership: a writer or reader is one open file, used by one
// thread at a time. A writer destroyed without Close() removes its temporary
// file, so nothing is published.
#ifndef MOERL_COMMON_TRANSPORT_RECORD_IO_H_
#define MOERL_COMMON_TRANSPORT_RECORD_IO_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"

namespace moerl {

inline constexpr char kRecordFileMagic[8] = {'M', 'O', 'E', 'R', 'L', 'R', 'E', 'C'};
inline constexpr uint32_t kRecordFileFormatVersion = 1;
inline constexpr uint64_t kRecordFileHeaderBytes = 16;
inline constexpr uint64_t kRecordFrameBytes = 12;  // length + length crc + payload crc
inline constexpr uint64_t kRecordEndMarkerBytes = 20;
// A length field of this value starts the end marker.
inline constexpr uint32_t kRecordEndMarkerLength = 0xFFFFFFFFu;
inline constexpr uint64_t kMaxRecordBytes = 1ull << 30;

class RecordWriter {
 public:
  // Opens a temporary file beside `path` ("<path>.tmp.<pid>.<n>") and writes
  // the header. The parent directory must exist.
  static absl::StatusOr<std::unique_ptr<RecordWriter>> Create(const std::string& path);

  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;
  // Without Close(): removes the temporary file.
  ~RecordWriter();

  absl::Status Write(absl::string_view record);
  absl::Status WriteMessage(const google::protobuf::MessageLite& message);
  // Writes the end marker, fsyncs, renames the temporary file to `path` and
  // fsyncs the directory. After this the writer accepts nothing more.
  absl::Status Close();

  uint64_t records_written() const { return records_; }
  uint64_t bytes_written() const { return offset_; }
  const std::string& path() const { return path_; }
  const std::string& temporary_path() const { return temp_path_; }

 private:
  RecordWriter(std::string path, std::string temp_path, int fd);
  absl::Status Append(absl::string_view bytes);
  absl::Status Flush();

  std::string path_;
  std::string temp_path_;
  int fd_;
  std::string buffer_;
  uint64_t offset_ = 0;
  uint64_t records_ = 0;
  bool closed_ = false;
};

class RecordReader {
 public:
  struct Options {
    // Keep the valid prefix of a damaged file instead of failing (see the
    // header comment). Off: any damage is an error.
    bool recover_truncated_tail = false;
  };

  static absl::StatusOr<std::unique_ptr<RecordReader>> Open(const std::string& path,
                                                            Options options);
  static absl::StatusOr<std::unique_ptr<RecordReader>> Open(const std::string& path) {
    return Open(path, Options());
  }
  // Reads `bytes` as if it were the file `name` (tests, the fuzzer, tools
  // that read from a pipe).
  static absl::StatusOr<std::unique_ptr<RecordReader>> FromString(std::string name,
                                                                   std::string bytes,
                                                                   Options options);

  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;
  ~RecordReader();

  // The next record into *record: true; false at the end marker (or, in
  // recovery mode, at the first damage); an error status at damage.
  absl::StatusOr<bool> Next(std::string* record);
  // Next + parse; a record that does not parse as `message` is kDataLoss
  // with its offset.
  absl::StatusOr<bool> NextMessage(google::protobuf::MessageLite* message);

  // Byte offset of the record most recently returned by Next.
  uint64_t record_offset() const { return record_offset_; }
  uint64_t records_read() const { return records_; }
  // Recovery mode: OK, or the damage that ended reading early.
  const absl::Status& dropped_tail() const { return dropped_tail_; }
  const std::string& name() const { return name_; }

 private:
  RecordReader(std::string name, int fd, uint64_t size, std::string bytes, Options options);
  // Reads [offset, offset+n) into *out; n must lie within size_.
  absl::Status ReadAt(uint64_t offset, uint64_t n, std::string* out);
  absl::Status ReadHeader();
  absl::StatusOr<bool> NextUnchecked(std::string* record);
  absl::Status Damage(uint64_t offset, absl::string_view what);

  std::string name_;
  int fd_;          // -1 when reading from bytes_
  uint64_t size_;   // file size, fixed at open
  std::string bytes_;
  Options options_;
  uint64_t offset_ = 0;
  uint64_t record_offset_ = 0;
  uint64_t records_ = 0;
  bool done_ = false;
  absl::Status sticky_error_;
  absl::Status dropped_tail_;
  std::string frame_;  // scratch for frame fields
};

}  // namespace moerl

#endif  // MOERL_COMMON_TRANSPORT_RECORD_IO_H_
