// The `weights/` folder of a run (docs/run_folder.md): version folders
// `v<N>/`, the `LATEST` file naming the newest complete one, and the pins
// (shared flocks) that keep a version from being removed while it is read.
// Torch-free: the trainer writes with it, the rollout bridge and the
// inference server read with it.
//
//   // reader (bridge, server)
//   MOERL_ASSIGN_OR_RETURN(int64_t v, ReadLatestVersion(weights_dir));
//   MOERL_ASSIGN_OR_RETURN(VersionPin pin, VersionPin::Acquire(weights_dir, v));
//   LoadFrom(pin.path());            // v<N>/ stays until `pin` is destroyed
//
//   // writer (trainer, rank 0), after publishing weights_dir/v7 atomically
//   MOERL_RETURN_IF_ERROR(WriteLatestVersion(weights_dir, 7));
//   MOERL_ASSIGN_OR_RETURN(auto removed, PruneVersions(weights_dir, /*keep=*/3));
//
// Pins: a reader holds a shared flock(2) on the version folder's directory
// descriptor; the writer removes a folder only after an exclusive
// non-blocking flock on it succeeds (it first renames the folder to a hidden
// `.v<N>.removing-<pid>` so no new reader finds it, then deletes it). A pin
// taken while a removal holds the exclusive lock fails with Unavailable; the
// reader then re-reads LATEST. flock is per open file description, so pins
// work between processes and between threads of one process alike.
//
// Threading: the free functions are safe from any thread; a VersionPin is a
// move-only owner of one descriptor.
#ifndef MOERL_COMMON_WEIGHTS_DIR_H_
#define MOERL_COMMON_WEIGHTS_DIR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moerl {

inline constexpr char kLatestFileName[] = "LATEST";

// "<weights_dir>/v<version>".
std::string VersionDir(const std::string& weights_dir, int64_t version);

// The number in <weights_dir>/LATEST. NotFound when there is no LATEST yet;
// InvalidArgument (naming the file and its text) when it is not one
// non-negative decimal number followed by an optional newline.
absl::StatusOr<int64_t> ReadLatestVersion(const std::string& weights_dir);

// Replaces <weights_dir>/LATEST with "<version>\n" atomically (temporary
// file, fsync, rename, fsync of the folder). FailedPrecondition when
// v<version>/ does not exist: LATEST never names a missing folder.
absl::Status WriteLatestVersion(const std::string& weights_dir, int64_t version);

// Versions present as v<N>/ folders, ascending (hidden folders ignored).
absl::StatusOr<std::vector<int64_t>> ListVersions(const std::string& weights_dir);

// Removes all but the newest `keep` versions (and never the one LATEST
// names), skipping pinned ones. Returns the versions removed.
absl::StatusOr<std::vector<int64_t>> PruneVersions(const std::string& weights_dir, int64_t keep);

// Removes what a killed writer leaves in `weights_dir`: hidden
// `.v<N>.removing-<pid>` and `.v<N>.staging-<pid>` folders and
// `.LATEST.tmp-<pid>` files whose process is no longer running (a set-aside
// `.v<N>.old-<pid>` is left for the next write of v<N>, which restores it).
// Readers never look at hidden names. Returns the names removed; a missing
// folder is none.
absl::StatusOr<std::vector<std::string>> RemoveAbandonedEntries(const std::string& weights_dir);

class VersionPin {
 public:
  // Opens v<version>/ and takes a shared non-blocking flock on it. NotFound
  // if the folder does not exist; Unavailable if it is being removed.
  static absl::StatusOr<VersionPin> Acquire(const std::string& weights_dir, int64_t version);

  VersionPin(VersionPin&& other) noexcept;
  VersionPin& operator=(VersionPin&& other) noexcept;
  VersionPin(const VersionPin&) = delete;
  VersionPin& operator=(const VersionPin&) = delete;
  ~VersionPin();  // releases the lock

  int64_t version() const { return version_; }
  const std::string& path() const { return path_; }
  // The pinned folder's descriptor (for openat-style reads).
  int fd() const { return fd_; }

 private:
  VersionPin(int fd, int64_t version, std::string path)
      : fd_(fd), version_(version), path_(std::move(path)) {}
  int fd_ = -1;
  int64_t version_ = -1;
  std::string path_;
};

}  // namespace moerl

#endif  // MOERL_COMMON_WEIGHTS_DIR_H_
