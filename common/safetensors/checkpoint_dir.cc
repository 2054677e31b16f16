#include "common/safetensors/checkpoint_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace moerl {
namespace {

using json = nlohmann::json;

// Closes a descriptor on every return path.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

bool ExistsAt(int dir_fd, const char* name) {
  struct stat st;
  return ::fstatat(dir_fd, name, &st, 0) == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointDir>> CheckpointDir::Open(const std::string& dir) {
  std::unique_ptr<CheckpointDir> ckpt(new CheckpointDir());
  ckpt->dir_ = dir;
  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/model.safetensors";
  // Everything below is read through this one descriptor, so a publish that
  // swaps `dir` meanwhile cannot mix two checkpoints (see the header).
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    const int error = errno;
    return absl::Status(absl::ErrnoToStatusCode(error),
                        absl::StrCat("cannot open checkpoint folder ", dir, ": ", std::strerror(error)));
  }
  FdCloser close_dir(dir_fd);
  if (!ExistsAt(dir_fd, "model.safetensors.index.json")) {
    if (!ExistsAt(dir_fd, "model.safetensors")) {
      return absl::NotFoundError(absl::StrCat(dir, " has neither model.safetensors.index.json nor ",
                                              "model.safetensors"));
    }
    MOERL_ASSIGN_OR_RETURN(auto file, SafetensorsFile::OpenAt(dir_fd, "model.safetensors", single_path));
    for (const TensorInfo& t : file->tensors()) ckpt->tensors_[t.name] = {file.get(), &t};
    ckpt->files_.push_back(std::move(file));
    return ckpt;
  }
  MOERL_ASSIGN_OR_RETURN(std::string text, ReadFileToStringAt(dir_fd, "model.safetensors.index.json",
                                                              index_path, "checkpoint index"));
  json index = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": not a valid JSON object"));
  }
  auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": missing object \"weight_map\""));
  }
  std::map<std::string, const SafetensorsFile*> shards;
  for (auto it = map->begin(); it != map->end(); ++it) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map[\"", it.key(),
                                                     "\"] is not a file name"));
    }
    const std::string shard = it->get<std::string>();
    if (shard.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map[\"", it.key(),
                                                     "\"] = \"", shard, "\" is not a plain file name"));
    }
    if (shards.count(shard) == 0) {
      MOERL_ASSIGN_OR_RETURN(auto file, SafetensorsFile::OpenAt(dir_fd, shard, dir + "/" + shard));
      shards[shard] = file.get();
      ckpt->files_.push_back(std::move(file));
    }
    const SafetensorsFile* file = shards[shard];
    const TensorInfo* info = file->Find(it.key());
    if (info == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": tensor \"", it.key(),
                                                     "\" is mapped to ", shard, " which lacks it"));
    }
    ckpt->tensors_[it.key()] = {file, info};
  }
  for (const auto& file : ckpt->files_) {
    for (const TensorInfo& t : file->tensors()) {
      auto it = ckpt->tensors_.find(t.name);
      if (it == ckpt->tensors_.end() || it->second.first != file.get()) {
        return absl::InvalidArgumentError(absl::StrCat(file->path(), ": tensor \"", t.name,
                                                       "\" is not mapped to this shard by ",
                                                       index_path));
      }
    }
  }
  return ckpt;
}

std::vector<std::string> CheckpointDir::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, unused] : tensors_) names.push_back(name);
  return names;
}

absl::StatusOr<TensorRef> CheckpointDir::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", dir_, " has no tensor \"", name, "\""));
  }
  TensorRef ref;
  ref.info = it->second.second;
  ref.bytes = it->second.first->Bytes(*ref.info);
  ref.file = &it->second.first->path();
  return ref;
}

}  // namespace moerl
