#include "dataset/delimited_proto_file.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moerl {
namespace {

constexpr uint64_t kMaxMessageBytes = uint64_t{1} << 30;

}  // namespace

DelimitedProtoWriter::DelimitedProtoWriter(std::string path) : path_(std::move(path)) {}

absl::StatusOr<std::unique_ptr<DelimitedProtoWriter>> DelimitedProtoWriter::Create(
    const std::string& path) {
  std::unique_ptr<DelimitedProtoWriter> writer(new DelimitedProtoWriter(path));
  writer->out_.open(path + ".tmp", std::ios::binary | std::ios::trunc);
  if (!writer->out_) return absl::PermissionDeniedError(absl::StrCat("cannot create ", path, ".tmp"));
  return writer;
}

absl::Status DelimitedProtoWriter::Write(absl::string_view payload) {
  if (closed_) return absl::FailedPreconditionError(absl::StrCat(path_, " is closed"));
  char varint[10];
  size_t n = 0;
  uint64_t size = payload.size();
  do {
    varint[n++] = static_cast<char>((size & 0x7f) | (size >= 0x80 ? 0x80 : 0));
    size >>= 7;
  } while (size != 0);
  out_.write(varint, static_cast<std::streamsize>(n));
  out_.write(payload.data(), static_cast<std::streamsize>(payload.size()));
  if (!out_) return absl::DataLossError(absl::StrCat("write to ", path_, ".tmp failed"));
  return absl::OkStatus();
}

absl::Status DelimitedProtoWriter::WriteMessage(const google::protobuf::MessageLite& message) {
  std::string bytes;
  if (!message.SerializeToString(&bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot serialize a ", message.GetTypeName()));
  }
  return Write(bytes);
}

absl::Status DelimitedProtoWriter::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  out_.flush();
  out_.close();
  if (out_.fail()) return absl::DataLossError(absl::StrCat("closing ", path_, ".tmp failed"));
  if (std::rename((path_ + ".tmp").c_str(), path_.c_str()) != 0) {
    return absl::DataLossError(absl::StrCat("cannot rename ", path_, ".tmp to ", path_));
  }
  return absl::OkStatus();
}

DelimitedProtoReader::DelimitedProtoReader(std::string path) : path_(std::move(path)) {}

absl::StatusOr<std::unique_ptr<DelimitedProtoReader>> DelimitedProtoReader::Open(
    const std::string& path) {
  std::unique_ptr<DelimitedProtoReader> reader(new DelimitedProtoReader(path));
  reader->in_.open(path, std::ios::binary);
  if (!reader->in_) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  return reader;
}

absl::StatusOr<bool> DelimitedProtoReader::Next(std::string* payload) {
  const uint64_t start = offset_;
  uint64_t size = 0;
  for (int shift = 0;; shift += 7) {
    const int c = in_.get();
    if (c == EOF) {
      if (shift == 0) return false;
      return absl::DataLossError(absl::StrCat(path_, ": truncated length at byte ", start));
    }
    ++offset_;
    if (shift >= 63) return absl::DataLossError(absl::StrCat(path_, ": bad length at byte ", start));
    size |= static_cast<uint64_t>(c & 0x7f) << shift;
    if ((c & 0x80) == 0) break;
  }
  if (size > kMaxMessageBytes) {
    return absl::DataLossError(
        absl::StrCat(path_, ": message of ", size, " bytes at byte ", start, " is too large"));
  }
  payload->resize(size);
  in_.read(payload->data(), static_cast<std::streamsize>(size));
  if (static_cast<uint64_t>(in_.gcount()) != size) {
    return absl::DataLossError(absl::StrCat(path_, ": truncated message at byte ", start,
                                            " (", size, " bytes announced)"));
  }
  offset_ += size;
  return true;
}

}  // namespace moerl
