// WriteCheckpointDir: stage the whole checkpoint folder beside its target,
// make it durable, then publish it with one rename (see checkpoint_dir.h).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/safetensors/checkpoint_dir.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace moerl {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

absl::Status ErrnoError(const std::string& what, int error) {
  return absl::Status(absl::ErrnoToStatusCode(error), absl::StrCat(what, ": ", std::strerror(error)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoError(absl::StrCat("cannot open ", path, " to fsync it"), errno);
  const bool ok = ::fsync(fd) == 0;
  const int error = errno;
  ::close(fd);
  return ok ? absl::OkStatus() : ErrnoError(absl::StrCat("fsync of ", path, " failed"), error);
}

// Writes and fsyncs a small file that does not exist yet. The error is the
// errno of the first call that failed.
absl::Status WriteNewFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wbx");
  if (f == nullptr) return ErrnoError(absl::StrCat("cannot create ", path), errno);
  int error = 0;
  const auto failed = [&error] {
    if (error == 0) error = errno != 0 ? errno : EIO;
  };
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), f) != text.size()) failed();
  if (std::fflush(f) != 0) failed();
  if (::fsync(::fileno(f)) != 0) failed();
  if (std::fclose(f) != 0) failed();
  return error == 0 ? absl::OkStatus() : ErrnoError(absl::StrCat("writing ", path, " failed"), error);
}

void RemoveTree(const std::string& path) {
  std::error_code ignored;
  fs::remove_all(path, ignored);
}

// Staging (".<name>.staging-<pid>") and set-aside (".<name>.old-<pid>")
// folders of `name` left by writers that no longer run: a crash, or this
// process's own earlier attempt. Staging folders are removed. A set-aside
// folder is the old checkpoint itself when `name` is missing (its writer
// died, or failed, between its two renames): it is renamed back into place,
// and removed only when `name` exists.
void RemoveAbandonedSiblings(const std::string& parent, const std::string& name) {
  std::vector<std::pair<std::string, bool>> abandoned;  // path, is a set-aside folder
  std::error_code error;
  for (fs::directory_iterator it(parent, error), end; !error && it != end; it.increment(error)) {
    const std::string file = it->path().filename().string();
    for (const char* kind : {".staging-", ".old-"}) {
      const std::string prefix = absl::StrCat(".", name, kind);
      int pid = 0;
      if (!absl::StartsWith(file, prefix) || !absl::SimpleAtoi(file.substr(prefix.size()), &pid) ||
          pid <= 0) {
        continue;
      }
      const bool running = pid != ::getpid() && (::kill(pid, 0) == 0 || errno != ESRCH);
      if (!running) abandoned.emplace_back(it->path().string(), std::strcmp(kind, ".old-") == 0);
    }
  }
  const std::string dir = absl::StrCat(parent, "/", name);
  for (const auto& [path, set_aside] : abandoned) {
    struct stat st;
    if (set_aside && ::lstat(dir.c_str(), &st) != 0 && errno == ENOENT &&
        std::rename(path.c_str(), dir.c_str()) == 0) {
      continue;  // the old checkpoint is back in place
    }
    RemoveTree(path);
  }
}

// Writes shards, index and extra files into the empty folder `staging`.
absl::Status WriteInto(const std::string& staging, const std::vector<TensorToWrite>& tensors,
                       const CheckpointWriteOptions& options) {
  std::vector<std::vector<TensorToWrite>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (const TensorToWrite& t : tensors) {
    if (shard_bytes > 0 && shard_bytes + t.bytes.size() > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(t);
    shard_bytes += t.bytes.size();
    total_bytes += t.bytes.size();
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (shards.size() == 1) {
    MOERL_RETURN_IF_ERROR(WriteSafetensors(staging + "/model.safetensors", shards[0], metadata));
  } else {
    json weight_map = json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string name = absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
      MOERL_RETURN_IF_ERROR(WriteSafetensors(staging + "/" + name, shards[i], metadata));
      for (const TensorToWrite& t : shards[i]) weight_map[t.name] = name;
    }
    json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    MOERL_RETURN_IF_ERROR(WriteNewFile(staging + "/model.safetensors.index.json", index.dump(2) + "\n"));
  }
  for (const auto& [name, text] : options.extra_files) {
    MOERL_RETURN_IF_ERROR(WriteNewFile(staging + "/" + name, text));
  }
  return FsyncPath(staging, O_RDONLY | O_DIRECTORY);
}

// Puts `staging` at `dir`; afterwards `staging` names whatever must be removed
// (the old checkpoint) or nothing.
absl::Status Publish(const std::string& staging, const std::string& dir, const std::string& aside) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoError(absl::StrCat("cannot stat ", dir), errno);
    if (std::rename(staging.c_str(), dir.c_str()) != 0) {
      return ErrnoError(absl::StrCat("cannot rename ", staging, " to ", dir), errno);
    }
    return absl::OkStatus();
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot publish checkpoint at ", dir,
        ": it exists and is not a folder (symlinks are not followed); remove it or pick another path"));
  }
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    return absl::OkStatus();
  }
  if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
    return ErrnoError(absl::StrCat("cannot exchange ", staging, " and ", dir), errno);
  }
  // No atomic exchange on this file system: set the old folder aside first.
  if (std::rename(dir.c_str(), aside.c_str()) != 0) {
    return ErrnoError(absl::StrCat("cannot rename ", dir, " aside to ", aside), errno);
  }
  if (std::rename(staging.c_str(), dir.c_str()) != 0) {
    const absl::Status status = ErrnoError(absl::StrCat("cannot rename ", staging, " to ", dir), errno);
    std::rename(aside.c_str(), dir.c_str());  // put the old checkpoint back
    return status;
  }
  if (std::rename(aside.c_str(), staging.c_str()) != 0) RemoveTree(aside);
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteCheckpointDir(const std::string& dir_in, const std::vector<TensorToWrite>& tensors,
                                const CheckpointWriteOptions& options) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
  const std::string name = slash == std::string::npos ? dir : dir.substr(slash + 1);
  if (name.empty() || name == "." || name == ".." || name == "/") {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint folder \"", dir_in, "\" has no name"));
  }
  for (const auto& [file, unused] : options.extra_files) {
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        absl::StartsWith(file, "model.safetensors") || absl::StartsWith(file, "model-")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "extra checkpoint file \"", file, "\" must be a plain file name that is not a weights file"));
    }
  }
  RemoveAbandonedSiblings(parent, name);
  const std::string staging = absl::StrCat(parent, "/.", name, ".staging-", ::getpid());
  const std::string aside = absl::StrCat(parent, "/.", name, ".old-", ::getpid());
  if (::mkdir(staging.c_str(), 0755) != 0) {
    return ErrnoError(absl::StrCat("cannot create staging folder ", staging), errno);
  }
  absl::Status status = WriteInto(staging, tensors, options);
  if (status.ok() && options.before_publish) status = options.before_publish(staging);
  if (status.ok()) status = Publish(staging, dir, aside);
  if (status.ok()) status = FsyncPath(parent, O_RDONLY | O_DIRECTORY);
  RemoveTree(staging);  // the abandoned write, or the replaced checkpoint
  return status;
}

absl::Status WriteCheckpointDir(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                                uint64_t max_shard_bytes) {
  CheckpointWriteOptions options;
  options.max_shard_bytes = max_shard_bytes;
  return WriteCheckpointDir(dir, tensors, options);
}

}  // namespace moerl
