#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moerl {
namespace {

absl::Status ReadError(absl::string_view what, const std::string& path, int error) {
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat("cannot read ", what, " '", path, "': ", std::strerror(error)));
}

absl::Status WriteError(absl::string_view step, const std::string& path, int error) {
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat("cannot ", step, " '", path, "': ", std::strerror(error)));
}

}  // namespace

absl::Status WriteFileSynced(const std::string& path, absl::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return WriteError("create", path, errno);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      return WriteError("write", path, err);
    }
    done += static_cast<size_t>(n);
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : WriteError("fsync", path, err);
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path, absl::string_view what) {
  return ReadFileToStringAt(AT_FDCWD, path, path, what);
}

absl::StatusOr<std::string> ReadFileToStringAt(int dir_fd, const std::string& name,
                                               const std::string& path, absl::string_view what) {
  const int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ReadError(what, path, errno);
  std::string bytes;
  struct stat st;
  if (::fstat(fd, &st) == 0) {
    // open() succeeds on a directory; say so instead of failing on read().
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      return ReadError(what, path, EISDIR);
    }
    if (S_ISREG(st.st_mode)) bytes.reserve(static_cast<size_t>(st.st_size));
  }
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      return ReadError(what, path, error);
    }
    bytes.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

}  // namespace moerl
