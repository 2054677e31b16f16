// Record files: see record_io.h for the layout and the error contract.
#include "common/transport/record_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/transport/crc32c.h"

namespace moerl {
namespace {

constexpr size_t kWriteBufferBytes = 1 << 20;

void PutU32(std::string* out, uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);  // little-endian targets only (x86-64, aarch64)
  out->append(b, 4);
}

void PutU64(std::string* out, uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out->append(b, 8);
}

uint32_t GetU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

uint64_t GetU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t CrcOfU32(uint32_t v) { return Crc32cExtend(0, &v, 4); }
uint32_t CrcOfU64(uint64_t v) { return Crc32cExtend(0, &v, 8); }

absl::Status ErrnoStatus(absl::string_view what, const std::string& path) {
  const int err = errno;
  return absl::Status(err == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kInternal,
                      absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string HeaderBytes() {
  std::string h(kRecordFileMagic, sizeof(kRecordFileMagic));
  PutU32(&h, kRecordFileFormatVersion);
  PutU32(&h, Crc32c(h));
  return h;
}

}  // namespace

// ---------------------------------------------------------------- writer

RecordWriter::RecordWriter(std::string path, std::string temp_path, int fd)
    : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {
  buffer_.reserve(kWriteBufferBytes);
}

RecordWriter::~RecordWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!closed_) ::unlink(temp_path_.c_str());
}

absl::StatusOr<std::unique_ptr<RecordWriter>> RecordWriter::Create(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("RecordWriter::Create: empty path");
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const std::string temp = absl::StrCat(path, ".tmp.", ::getpid(), ".",
                                        static_cast<uint64_t>(now.tv_sec) * 1000000000ull +
                                            static_cast<uint64_t>(now.tv_nsec));
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("cannot create record file", temp);
  std::unique_ptr<RecordWriter> writer(new RecordWriter(path, temp, fd));
  MOERL_RETURN_IF_ERROR(writer->Append(HeaderBytes()));
  return writer;
}

absl::Status RecordWriter::Append(absl::string_view bytes) {
  if (closed_) {
    return absl::FailedPreconditionError(absl::StrCat("record file ", path_, " is already closed"));
  }
  buffer_.append(bytes.data(), bytes.size());
  offset_ += bytes.size();
  if (buffer_.size() >= kWriteBufferBytes) return Flush();
  return absl::OkStatus();
}

absl::Status RecordWriter::Flush() {
  const char* p = buffer_.data();
  size_t left = buffer_.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot write record file", temp_path_);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  buffer_.clear();
  return absl::OkStatus();
}

absl::Status RecordWriter::Write(absl::string_view record) {
  if (record.size() > kMaxRecordBytes) {
    return absl::InvalidArgumentError(absl::StrCat("record of ", record.size(),
                                                   " bytes is over the limit of ",
                                                   kMaxRecordBytes, " bytes (", path_, ")"));
  }
  std::string frame;
  const uint32_t length = static_cast<uint32_t>(record.size());
  PutU32(&frame, length);
  PutU32(&frame, CrcOfU32(length));
  MOERL_RETURN_IF_ERROR(Append(frame));
  MOERL_RETURN_IF_ERROR(Append(record));
  frame.clear();
  PutU32(&frame, Crc32c(record));
  MOERL_RETURN_IF_ERROR(Append(frame));
  ++records_;
  return absl::OkStatus();
}

absl::Status RecordWriter::WriteMessage(const google::protobuf::MessageLite& message) {
  std::string bytes;
  if (!message.SerializeToString(&bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot serialize ", message.GetTypeName(),
                                                   " (missing required fields?) for ", path_));
  }
  return Write(bytes);
}

absl::Status RecordWriter::Close() {
  std::string end;
  PutU32(&end, kRecordEndMarkerLength);
  PutU32(&end, CrcOfU32(kRecordEndMarkerLength));
  PutU64(&end, records_);
  PutU32(&end, CrcOfU64(records_));
  MOERL_RETURN_IF_ERROR(Append(end));
  MOERL_RETURN_IF_ERROR(Flush());
  if (::fsync(fd_) != 0) return ErrnoStatus("cannot fsync record file", temp_path_);
  if (::close(fd_) != 0) {
    fd_ = -1;
    return ErrnoStatus("cannot close record file", temp_path_);
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return ErrnoStatus(absl::StrCat("cannot rename ", temp_path_, " to"), path_);
  }
  closed_ = true;
  // The rename is durable only once the directory entry is.
  const std::string dir = DirectoryOf(path_);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus("cannot open directory", dir);
  const int rc = ::fsync(dir_fd);
  ::close(dir_fd);
  if (rc != 0) return ErrnoStatus("cannot fsync directory", dir);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- reader

RecordReader::RecordReader(std::string name, int fd, uint64_t size, std::string bytes,
                           Options options)
    : name_(std::move(name)), fd_(fd), size_(size), bytes_(std::move(bytes)),
      options_(options) {}

RecordReader::~RecordReader() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::unique_ptr<RecordReader>> RecordReader::Open(const std::string& path,
                                                                 Options options) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open record file", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    absl::Status s = ErrnoStatus("cannot stat record file", path);
    ::close(fd);
    return s;
  }
  std::unique_ptr<RecordReader> reader(
      new RecordReader(path, fd, static_cast<uint64_t>(st.st_size), "", options));
  MOERL_RETURN_IF_ERROR(reader->ReadHeader());
  return reader;
}

absl::StatusOr<std::unique_ptr<RecordReader>> RecordReader::FromString(std::string name,
                                                                       std::string bytes,
                                                                       Options options) {
  const uint64_t size = bytes.size();
  std::unique_ptr<RecordReader> reader(
      new RecordReader(std::move(name), -1, size, std::move(bytes), options));
  MOERL_RETURN_IF_ERROR(reader->ReadHeader());
  return reader;
}

absl::Status RecordReader::ReadAt(uint64_t offset, uint64_t n, std::string* out) {
  out->resize(n);
  if (fd_ < 0) {
    std::memcpy(&(*out)[0], bytes_.data() + offset, n);
    return absl::OkStatus();
  }
  uint64_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd_, &(*out)[done], n - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return ErrnoStatus("cannot read record file", name_);
    if (got == 0) {
      return Damage(offset + done, "file shrank while it was being read");
    }
    done += static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

absl::Status RecordReader::Damage(uint64_t offset, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(name_, ": byte ", offset, ": ", what));
}

absl::Status RecordReader::ReadHeader() {
  const uint64_t magic_bytes = sizeof(kRecordFileMagic);
  std::string header;
  MOERL_RETURN_IF_ERROR(
      ReadAt(0, size_ < kRecordFileHeaderBytes ? size_ : kRecordFileHeaderBytes, &header));
  const uint64_t compare = header.size() < magic_bytes ? header.size() : magic_bytes;
  if (std::memcmp(header.data(), kRecordFileMagic, compare) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": byte 0: not a moerl record file (expected magic \"MOERLREC\")"));
  }
  if (header.size() < kRecordFileHeaderBytes) {
    return Damage(0, absl::StrCat("truncated header: the file is ", size_, " bytes, the header ",
                                  kRecordFileHeaderBytes));
  }
  if (GetU32(header.data() + 12) != Crc32c(absl::string_view(header.data(), 12))) {
    return Damage(0, "header checksum mismatch");
  }
  const uint32_t version = GetU32(header.data() + 8);
  if (version != kRecordFileFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": byte 8: record format version ", version,
                     ", this reader knows version ", kRecordFileFormatVersion));
  }
  offset_ = kRecordFileHeaderBytes;
  return absl::OkStatus();
}

absl::StatusOr<bool> RecordReader::Next(std::string* record) {
  if (!sticky_error_.ok()) return sticky_error_;
  if (done_) return false;
  absl::StatusOr<bool> result = NextUnchecked(record);
  if (result.ok()) return result;
  if (options_.recover_truncated_tail && result.status().code() == absl::StatusCode::kDataLoss) {
    dropped_tail_ = result.status();
    done_ = true;
    return false;
  }
  sticky_error_ = result.status();
  return result;
}

absl::StatusOr<bool> RecordReader::NextUnchecked(std::string* record) {
  const uint64_t at = offset_;
  if (size_ - at < 8) {
    if (size_ == at) {
      return Damage(at, absl::StrCat("file ends without its end marker after ", records_,
                                     " records (truncated?)"));
    }
    return Damage(at, absl::StrCat("torn record header: the file ends at byte ", size_));
  }
  MOERL_RETURN_IF_ERROR(ReadAt(at, 8, &frame_));
  const uint32_t length = GetU32(frame_.data());
  if (GetU32(frame_.data() + 4) != CrcOfU32(length)) {
    return Damage(at, "corrupt record length (checksum mismatch)");
  }
  if (length == kRecordEndMarkerLength) {
    if (size_ - at < kRecordEndMarkerBytes) {
      return Damage(at, absl::StrCat("torn end marker: the file ends at byte ", size_));
    }
    MOERL_RETURN_IF_ERROR(ReadAt(at + 8, 12, &frame_));
    const uint64_t count = GetU64(frame_.data());
    if (GetU32(frame_.data() + 8) != CrcOfU64(count)) {
      return Damage(at, "corrupt end marker (checksum mismatch)");
    }
    if (count != records_) {
      return Damage(at, absl::StrCat("end marker counts ", count, " records, the file has ",
                                     records_));
    }
    if (size_ - at != kRecordEndMarkerBytes) {
      return Damage(at + kRecordEndMarkerBytes,
                    absl::StrCat(size_ - at - kRecordEndMarkerBytes,
                                 " unexpected bytes after the end marker"));
    }
    done_ = true;
    return false;
  }
  if (length > kMaxRecordBytes) {
    return Damage(at, absl::StrCat("record length ", length, " is over the limit of ",
                                   kMaxRecordBytes));
  }
  if (size_ - at < kRecordFrameBytes + length) {
    return Damage(at, absl::StrCat("torn record: it needs ", kRecordFrameBytes + length,
                                   " bytes, the file ends at byte ", size_));
  }
  MOERL_RETURN_IF_ERROR(ReadAt(at + 8, length + 4ull, record));
  const uint32_t stored_crc = GetU32(record->data() + length);
  record->resize(length);
  if (stored_crc != Crc32c(*record)) {
    return Damage(at, "corrupt record payload (checksum mismatch)");
  }
  record_offset_ = at;
  offset_ = at + kRecordFrameBytes + length;
  ++records_;
  return true;
}

absl::StatusOr<bool> RecordReader::NextMessage(google::protobuf::MessageLite* message) {
  std::string bytes;
  MOERL_ASSIGN_OR_RETURN(bool more, Next(&bytes));
  if (!more) return false;
  if (!message->ParseFromString(bytes)) {
    sticky_error_ = Damage(record_offset_, absl::StrCat("record does not parse as ",
                                                        message->GetTypeName()));
    return sticky_error_;
  }
  return true;
}

}  // namespace moerl
