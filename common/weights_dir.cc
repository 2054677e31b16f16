#include "common/weights_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace moerl {
namespace {

absl::Status ErrnoError(int err, const std::string& what) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, ": ", std::strerror(err)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("cannot open '", path, "' to fsync"));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError(err, absl::StrCat("fsync '", path, "'"));
  return absl::OkStatus();
}

// "v12" -> 12; anything else -> -1.
int64_t ParseVersionName(const char* name) {
  if (name[0] != 'v' || name[1] == '\0') return -1;
  int64_t value = 0;
  for (const char* p = name + 1; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9' || value > (int64_t{1} << 58)) return -1;
    value = value * 10 + (*p - '0');
  }
  return value;
}

}  // namespace

std::string VersionDir(const std::string& weights_dir, int64_t version) {
  return absl::StrCat(weights_dir, "/v", version);
}

absl::StatusOr<int64_t> ReadLatestVersion(const std::string& weights_dir) {
  const std::string path = absl::StrCat(weights_dir, "/", kLatestFileName);
  MOERL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, "weights LATEST file"));
  absl::string_view body = text;
  if (!body.empty() && body.back() == '\n') body.remove_suffix(1);
  int64_t version = -1;
  const bool digits_only =
      !body.empty() && std::all_of(body.begin(), body.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits_only || !absl::SimpleAtoi(body, &version) || version < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' must hold one non-negative decimal version and a newline, found \"",
        absl::CEscape(text.substr(0, 64)), "\""));
  }
  return version;
}

absl::Status WriteLatestVersion(const std::string& weights_dir, int64_t version) {
  if (version < 0) return absl::InvalidArgumentError(absl::StrCat("version ", version, " < 0"));
  const std::string vdir = VersionDir(weights_dir, version);
  struct stat st;
  if (::stat(vdir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot point LATEST at '", vdir, "': no such version folder"));
  }
  const std::string final_path = absl::StrCat(weights_dir, "/", kLatestFileName);
  const std::string temp_path = absl::StrCat(weights_dir, "/.", kLatestFileName, ".tmp-", ::getpid());
  const std::string text = absl::StrCat(version, "\n");
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("cannot create '", temp_path, "'"));
  const bool wrote = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int write_err = errno;
  const bool synced = wrote && ::fsync(fd) == 0;
  const int sync_err = errno;
  ::close(fd);
  if (!wrote || !synced) {
    ::unlink(temp_path.c_str());
    return ErrnoError(wrote ? sync_err : write_err, absl::StrCat("cannot write '", temp_path, "'"));
  }
  if (::rename(temp_path.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path.c_str());
    return ErrnoError(err, absl::StrCat("cannot rename '", temp_path, "' to '", final_path, "'"));
  }
  return FsyncPath(weights_dir, O_RDONLY | O_DIRECTORY);
}

absl::StatusOr<std::vector<int64_t>> ListVersions(const std::string& weights_dir) {
  DIR* dir = ::opendir(weights_dir.c_str());
  if (dir == nullptr) return ErrnoError(errno, absl::StrCat("cannot list '", weights_dir, "'"));
  std::vector<int64_t> versions;
  while (const dirent* entry = ::readdir(dir)) {
    const int64_t v = ParseVersionName(entry->d_name);
    if (v < 0) continue;
    struct stat st;
    const std::string path = absl::StrCat(weights_dir, "/", entry->d_name);
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) versions.push_back(v);
  }
  ::closedir(dir);
  std::sort(versions.begin(), versions.end());
  return versions;
}

absl::StatusOr<std::vector<int64_t>> PruneVersions(const std::string& weights_dir, int64_t keep) {
  if (keep < 1) return absl::InvalidArgumentError(absl::StrCat("keep must be >= 1, got ", keep));
  MOERL_ASSIGN_OR_RETURN(std::vector<int64_t> versions, ListVersions(weights_dir));
  const absl::StatusOr<int64_t> latest = ReadLatestVersion(weights_dir);
  std::vector<int64_t> removed;
  const int64_t n_old = static_cast<int64_t>(versions.size()) - keep;
  for (int64_t i = 0; i < n_old; ++i) {
    const int64_t v = versions[i];
    if (latest.ok() && *latest == v) continue;
    const std::string path = VersionDir(weights_dir, v);
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;  // gone already
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);  // pinned by a reader: try again after a later step
      continue;
    }
    // Hidden first, so no reader finds it by name; the lock (on the inode)
    // stays held across the rename.
    const std::string doomed = absl::StrCat(weights_dir, "/.v", v, ".removing-", ::getpid());
    const bool renamed = ::rename(path.c_str(), doomed.c_str()) == 0;
    const int err = errno;
    std::error_code ec;
    if (renamed) std::filesystem::remove_all(doomed, ec);
    ::close(fd);
    if (!renamed) return ErrnoError(err, absl::StrCat("cannot rename '", path, "' for removal"));
    if (ec) return absl::InternalError(absl::StrCat("cannot remove '", doomed, "': ", ec.message()));
    removed.push_back(v);
  }
  return removed;
}

absl::StatusOr<std::vector<std::string>> RemoveAbandonedEntries(const std::string& weights_dir) {
  DIR* dir = ::opendir(weights_dir.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return std::vector<std::string>();
    return ErrnoError(errno, absl::StrCat("cannot list '", weights_dir, "'"));
  }
  std::vector<std::string> abandoned;
  while (const dirent* entry = ::readdir(dir)) {
    const absl::string_view name = entry->d_name;
    // ".v<N>.removing-<pid>", ".v<N>.staging-<pid>", ".LATEST.tmp-<pid>"
    const size_t dash = name.rfind('-');
    int pid = 0;
    if (dash == absl::string_view::npos || !absl::SimpleAtoi(name.substr(dash + 1), &pid) || pid <= 0) continue;
    const absl::string_view stem = name.substr(0, dash);
    const bool ours = absl::StartsWith(stem, absl::StrCat(".", kLatestFileName, ".tmp")) ||
                      (absl::StartsWith(stem, ".v") &&
                       (absl::EndsWith(stem, ".removing") || absl::EndsWith(stem, ".staging")));
    if (!ours) continue;
    const bool running = pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH;
    if (!running) abandoned.emplace_back(name);
  }
  ::closedir(dir);
  std::sort(abandoned.begin(), abandoned.end());
  for (const std::string& name : abandoned) {
    std::error_code ec;
    std::filesystem::remove_all(absl::StrCat(weights_dir, "/", name), ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot remove '", weights_dir, "/", name, "': ", ec.message()));
  }
  return abandoned;
}

absl::StatusOr<VersionPin> VersionPin::Acquire(const std::string& weights_dir, int64_t version) {
  std::string path = VersionDir(weights_dir, version);
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("cannot pin weights version '", path, "'"));
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return absl::UnavailableError(absl::StrCat("weights version '", path, "' is being removed"));
    }
    return ErrnoError(err, absl::StrCat("cannot flock '", path, "'"));
  }
  // A remover may have renamed the folder away between our open and flock:
  // the pin holds only if the name still leads to the inode we locked.
  struct stat held, named;
  if (::fstat(fd, &held) != 0 || ::stat(path.c_str(), &named) != 0 || held.st_ino != named.st_ino ||
      held.st_dev != named.st_dev) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("weights version '", path, "' was removed"));
  }
  return VersionPin(fd, version, std::move(path));
}

VersionPin::VersionPin(VersionPin&& other) noexcept
    : fd_(other.fd_), version_(other.version_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

VersionPin& VersionPin::operator=(VersionPin&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    version_ = other.version_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

VersionPin::~VersionPin() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace moerl
