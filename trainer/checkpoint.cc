#include "trainer/checkpoint.h"

#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/proto/checkpoint.pb.h"
#include "common/proto/formats.h"
#include "common/status.h"
#include "common/transport/crc32c.h"
#include "trainer/model/hf_weights.h"

namespace moerl {
namespace {

constexpr char kManifest[] = "manifest.pb";
constexpr char kOptimizer[] = "optimizer.pt";  // the format before optimizer/
constexpr char kOptimizerDir[] = "optimizer";

absl::Status ErrnoError(int err, const std::string& what) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, ": ", std::strerror(err)));
}

absl::Status Fsync(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("cannot open '", path, "' to fsync"));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : ErrnoError(err, absl::StrCat("fsync '", path, "'"));
}

// Size and CRC32C of a file, read in 1 MiB pieces: the checksum runs over
// a buffer still in cache, and no copy of the whole file is held (an
// optimizer state is several times the size of the weights).
struct FileDigest {
  uint64_t size = 0;
  uint32_t crc32c = 0;
};

absl::StatusOr<FileDigest> DigestFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("cannot open checkpoint file '", path, "'"));
  std::vector<char> buffer(size_t{1} << 20);
  FileDigest digest;
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoError(err, absl::StrCat("cannot read checkpoint file '", path, "'"));
    }
    digest.crc32c = Crc32cExtend(digest.crc32c, buffer.data(), static_cast<size_t>(n));
    digest.size += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return digest;
}

// Every regular file under `root`, as paths relative to it, sorted.
std::vector<std::string> FilesUnder(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file()) out.push_back(std::filesystem::relative(it->path(), root).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<proto::CheckpointManifest> ReadManifest(const std::string& step_dir) {
  MOERL_ASSIGN_OR_RETURN(std::string bytes,
                         ReadFileToString(absl::StrCat(step_dir, "/", kManifest), "checkpoint manifest"));
  proto::CheckpointManifest manifest;
  if (!manifest.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(step_dir, "/", kManifest, " does not parse"));
  }
  if (manifest.format_version() != kCheckpointManifestFormatVersion) {
    return absl::DataLossError(absl::StrCat(step_dir, "/", kManifest, ": format_version ",
                                            manifest.format_version(), ", expected ",
                                            kCheckpointManifestFormatVersion));
  }
  for (const proto::CheckpointFile& f : manifest.files()) {
    MOERL_ASSIGN_OR_RETURN(FileDigest data, DigestFile(absl::StrCat(step_dir, "/", f.path())));
    if (data.size != f.size_bytes() || data.crc32c != f.crc32c()) {
      return absl::DataLossError(absl::StrCat(step_dir, "/", f.path(), " does not match the manifest (",
                                              data.size, " bytes, manifest ", f.size_bytes(), ")"));
    }
  }
  return manifest;
}

// The N of every step-<N> folder, newest first (none when the folder does
// not exist); `removing` (may be null) gets the hidden `.step-*.removing-*`
// names that a removal left behind.
absl::StatusOr<std::vector<int64_t>> ListCheckpointSteps(const std::string& checkpoints_dir,
                                                         std::vector<std::string>* removing) {
  std::vector<int64_t> steps;
  DIR* dir = ::opendir(checkpoints_dir.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return steps;
    return ErrnoError(errno, absl::StrCat("cannot list '", checkpoints_dir, "'"));
  }
  while (const dirent* e = ::readdir(dir)) {
    absl::string_view name = e->d_name;
    int64_t step = 0;
    if (removing != nullptr && absl::StartsWith(name, ".step-") && absl::StrContains(name, ".removing-")) {
      removing->emplace_back(name);
    } else if (absl::ConsumePrefix(&name, "step-") && absl::SimpleAtoi(name, &step) && step >= 0) {
      steps.push_back(step);
    }
  }
  ::closedir(dir);
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

}  // namespace

std::string CheckpointStepDir(const std::string& checkpoints_dir, int64_t step) {
  return absl::StrCat(checkpoints_dir, "/step-", step);
}

absl::Status SaveTrainerCheckpoint(const std::string& checkpoints_dir, Qwen3Model& model,
                                   const TrainOptimizer& optimizer, const TrainerState& state) {
  return SaveTrainerCheckpoint(checkpoints_dir, model,
                               GatherOptimizerState(model, optimizer, ParallelState::SingleProcess()), state);
}

absl::Status SaveTrainerCheckpoint(const std::string& checkpoints_dir, Qwen3Model& model,
                                   const GatheredOptimizerState& optimizer_state, const TrainerState& state) {
  std::error_code ec;
  std::filesystem::create_directories(checkpoints_dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create '", checkpoints_dir, "': ", ec.message()));
  const std::string final_dir = CheckpointStepDir(checkpoints_dir, state.step);
  const std::string staging = absl::StrCat(checkpoints_dir, "/.step-", state.step, ".staging-", ::getpid());
  std::filesystem::remove_all(staging, ec);
  std::filesystem::create_directories(staging, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create '", staging, "': ", ec.message()));

  MOERL_RETURN_IF_ERROR(SaveHfCheckpoint(model, staging + "/weights", model.dtype(), uint64_t{5} << 30));
  MOERL_RETURN_IF_ERROR(WriteOptimizerState(optimizer_state, absl::StrCat(staging, "/", kOptimizerDir)));
  MOERL_RETURN_IF_ERROR(Fsync(absl::StrCat(staging, "/", kOptimizerDir), true));

  proto::CheckpointManifest manifest;
  manifest.set_format_version(kCheckpointManifestFormatVersion);
  manifest.set_step(static_cast<uint64_t>(state.step));
  manifest.set_policy_version(state.step);
  manifest.set_data_epoch(static_cast<uint32_t>(state.data_epoch));
  manifest.set_data_index(static_cast<uint64_t>(state.data_index));
  manifest.set_seed(static_cast<uint64_t>(state.seed));
  at::Tensor rng = at::globalContext().defaultGenerator(at::kCPU).get_state();
  manifest.set_rng_state(std::string(static_cast<const char*>(rng.data_ptr()), rng.nbytes()));
  manifest.set_allocation_mode(state.allocation_mode);
  manifest.set_wall_time(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  for (const std::string& rel : FilesUnder(staging)) {
    MOERL_ASSIGN_OR_RETURN(FileDigest data, DigestFile(absl::StrCat(staging, "/", rel)));
    proto::CheckpointFile* f = manifest.add_files();
    f->set_path(rel);
    f->set_size_bytes(data.size);
    f->set_crc32c(data.crc32c);
  }
  MOERL_RETURN_IF_ERROR(WriteFileSynced(absl::StrCat(staging, "/", kManifest), manifest.SerializeAsString()));
  MOERL_RETURN_IF_ERROR(Fsync(staging, true));
  // A re-run of the same step replaces the folder: the old one is first
  // renamed to a hidden name, so that step-<N> is never seen half-deleted.
  const std::string old = absl::StrCat(checkpoints_dir, "/.step-", state.step, ".old-", ::getpid());
  const bool replaced = ::rename(final_dir.c_str(), old.c_str()) == 0;
  if (!replaced && errno != ENOENT) {
    return ErrnoError(errno, absl::StrCat("cannot rename '", final_dir, "' aside to '", old, "'"));
  }
  if (::rename(staging.c_str(), final_dir.c_str()) != 0) {
    return ErrnoError(errno, absl::StrCat("cannot rename '", staging, "' to '", final_dir, "'"));
  }
  if (replaced) std::filesystem::remove_all(old, ec);
  return Fsync(checkpoints_dir, true);
}

absl::Status VerifyTrainerCheckpoint(const std::string& step_dir) { return ReadManifest(step_dir).status(); }

absl::StatusOr<std::vector<std::string>> RemoveAbandonedCheckpointFiles(const std::string& checkpoints_dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(checkpoints_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (absl::StartsWith(name, ".step-") || absl::StartsWith(name, ".optimizer-rank-")) {
      removed.push_back(name);
    }
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return absl::InternalError(absl::StrCat("cannot list '", checkpoints_dir, "': ", ec.message()));
  }
  std::sort(removed.begin(), removed.end());
  for (const std::string& name : removed) {
    std::filesystem::remove_all(absl::StrCat(checkpoints_dir, "/", name), ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot remove '", checkpoints_dir, "/", name, "': ", ec.message()));
    }
  }
  return removed;
}

absl::StatusOr<std::optional<std::string>> FindLatestCheckpoint(const std::string& checkpoints_dir) {
  MOERL_ASSIGN_OR_RETURN(std::vector<int64_t> steps, ListCheckpointSteps(checkpoints_dir, nullptr));
  for (int64_t step : steps) {
    const std::string path = CheckpointStepDir(checkpoints_dir, step);
    if (ReadManifest(path).ok()) return std::optional<std::string>(path);
  }
  return std::optional<std::string>();
}

absl::StatusOr<std::vector<int64_t>> PruneCheckpoints(const std::string& checkpoints_dir, int64_t keep) {
  std::vector<std::string> removing;
  MOERL_ASSIGN_OR_RETURN(std::vector<int64_t> steps, ListCheckpointSteps(checkpoints_dir, &removing));
  std::error_code ec;
  for (const std::string& name : removing) {
    std::filesystem::remove_all(absl::StrCat(checkpoints_dir, "/", name), ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot remove '", checkpoints_dir, "/", name, "': ", ec.message()));
  }
  std::vector<int64_t> removed;
  if (keep < 1) return removed;
  int64_t complete = 0;
  for (int64_t step : steps) {  // newest first
    const std::string path = CheckpointStepDir(checkpoints_dir, step);
    if (complete < keep) {
      if (ReadManifest(path).ok()) ++complete;
      continue;
    }
    const std::string doomed = absl::StrCat(checkpoints_dir, "/.step-", step, ".removing-", ::getpid());
    if (::rename(path.c_str(), doomed.c_str()) != 0) {
      return ErrnoError(errno, absl::StrCat("cannot rename '", path, "' for removal"));
    }
    std::filesystem::remove_all(doomed, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot remove '", doomed, "': ", ec.message()));
    removed.push_back(step);
  }
  std::reverse(removed.begin(), removed.end());
  if (!removed.empty()) MOERL_RETURN_IF_ERROR(Fsync(checkpoints_dir, true));
  return removed;
}

absl::Status LoadTrainerCheckpoint(const std::string& step_dir, Qwen3Model* model,
                                   TrainOptimizer* optimizer, TrainerState* state,
                                   const std::string& optimizer_file) {
  MOERL_ASSIGN_OR_RETURN(proto::CheckpointManifest manifest, ReadManifest(step_dir));
  if (manifest.allocation_mode() != state->allocation_mode) {
    const std::string optimizer_dir = absl::StrCat(step_dir, "/", kOptimizerDir);
    if (!HasOptimizerState(optimizer_dir)) {
      return absl::FailedPreconditionError(absl::StrCat(
          step_dir, " was written under allocation_mode '", manifest.allocation_mode(),
          "' in the per-rank optimizer format (optimizer.pt, optimizer-rank-<r>.pt), which only that layout can "
          "resume; this run has allocation_mode '", state->allocation_mode,
          "'. Resume it under the writing layout once (its next checkpoint is layout-independent)."));
    }
    MOERL_LOG(INFO) << "resharding " << step_dir << ": written under allocation_mode '" << manifest.allocation_mode()
                    << "', resumed under '" << state->allocation_mode << "'";
  }
  MOERL_RETURN_IF_ERROR(LoadHfWeights(step_dir + "/weights", model));
  if (HasOptimizerState(absl::StrCat(step_dir, "/", kOptimizerDir))) {
    MOERL_RETURN_IF_ERROR(ReadOptimizerState(absl::StrCat(step_dir, "/", kOptimizerDir), *model, optimizer));
  } else {
    MOERL_RETURN_IF_ERROR(optimizer->Load(
        absl::StrCat(step_dir, "/", optimizer_file.empty() ? std::string(kOptimizer) : optimizer_file)));
  }
  at::Tensor rng = at::empty({static_cast<int64_t>(manifest.rng_state().size())}, at::kByte);
  std::memcpy(rng.data_ptr(), manifest.rng_state().data(), manifest.rng_state().size());
  at::Generator generator = at::globalContext().defaultGenerator(at::kCPU);  // shares the state
  generator.set_state(rng);
  state->step = static_cast<int64_t>(manifest.step());
  state->data_epoch = manifest.data_epoch();
  state->data_index = static_cast<int64_t>(manifest.data_index());
  return absl::OkStatus();
}

}  // namespace moerl
