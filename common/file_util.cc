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

}  // namespace

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
