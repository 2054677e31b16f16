#include "trainer/tensorboard_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/transport/crc32c.h"

namespace moerl {
namespace {

uint32_t MaskedCrc(const std::string& bytes) {
  const uint32_t crc = Crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

template <typename T>
void PutFixed(std::string* out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // little-endian hosts only (x86, arm64)
  out->append(bytes, sizeof(T));
}

void PutBytesField(std::string* out, int field, const std::string& bytes) {
  PutVarint(out, static_cast<uint64_t>(field) << 3 | 2);
  PutVarint(out, bytes.size());
  out->append(bytes);
}

std::string EventHeader(int64_t step) {
  std::string event;
  PutVarint(&event, 1 << 3 | 1);  // wall_time, fixed64
  PutFixed<double>(&event, absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  PutVarint(&event, 2 << 3 | 0);  // step, varint
  PutVarint(&event, static_cast<uint64_t>(step));
  return event;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TensorBoardWriter>> TensorBoardWriter::Create(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create '", dir, "': ", ec.message()));
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  const std::string path =
      absl::StrCat(dir, "/events.out.tfevents.", absl::ToUnixSeconds(absl::Now()), ".", host, ".", ::getpid());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return absl::PermissionDeniedError(absl::StrCat("cannot create '", path, "': ", std::strerror(errno)));
  std::unique_ptr<TensorBoardWriter> writer(new TensorBoardWriter(path, fd));
  std::string event = EventHeader(0);
  PutBytesField(&event, 3, "brain.Event:2");
  absl::Status status = writer->WriteRecord(event);
  if (!status.ok()) return status;
  return writer;
}

TensorBoardWriter::~TensorBoardWriter() { ::close(fd_); }

absl::Status TensorBoardWriter::WriteScalars(int64_t step, const std::map<std::string, double>& values) {
  std::string summary;
  for (const auto& [tag, value] : values) {
    if (!std::isfinite(value)) continue;
    std::string v;
    PutBytesField(&v, 1, tag);
    PutVarint(&v, 2 << 3 | 5);  // simple_value, fixed32 float
    PutFixed<float>(&v, static_cast<float>(value));
    PutBytesField(&summary, 1, v);
  }
  std::string event = EventHeader(step);
  PutBytesField(&event, 5, summary);
  return WriteRecord(event);
}

absl::Status TensorBoardWriter::WriteSessionStart(int64_t step) {
  std::string session_log;
  PutVarint(&session_log, 1 << 3 | 0);  // status, varint
  PutVarint(&session_log, 1);           // START
  std::string event = EventHeader(step);
  PutBytesField(&event, 7, session_log);
  return WriteRecord(event);
}

absl::Status TensorBoardWriter::WriteRecord(const std::string& data) {
  std::string length;
  PutFixed<uint64_t>(&length, data.size());
  std::string record = length;
  PutFixed<uint32_t>(&record, MaskedCrc(length));
  record += data;
  PutFixed<uint32_t>(&record, MaskedCrc(data));
  const ssize_t n = ::write(fd_, record.data(), record.size());
  if (n != static_cast<ssize_t>(record.size())) {
    return absl::DataLossError(absl::StrCat("cannot append to '", path_, "': ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace moerl
