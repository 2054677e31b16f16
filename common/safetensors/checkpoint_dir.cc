#include "common/safetensors/checkpoint_dir.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace moerl {
namespace {

using json = nlohmann::json;

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("writing ", tmp, " failed"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("renaming ", tmp, " failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointDir>> CheckpointDir::Open(const std::string& dir) {
  std::unique_ptr<CheckpointDir> ckpt(new CheckpointDir());
  ckpt->dir_ = dir;
  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/model.safetensors";
  if (!Exists(index_path)) {
    if (!Exists(single_path)) {
      return absl::NotFoundError(absl::StrCat(dir, " has neither model.safetensors.index.json nor ",
                                              "model.safetensors"));
    }
    MOERL_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single_path));
    for (const TensorInfo& t : file->tensors()) ckpt->tensors_[t.name] = {file.get(), &t};
    ckpt->files_.push_back(std::move(file));
    return ckpt;
  }
  MOERL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path, "checkpoint index"));
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
      MOERL_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(dir + "/" + shard));
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

absl::Status WriteCheckpointDir(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                                uint64_t max_shard_bytes) {
  ::mkdir(dir.c_str(), 0755);
  std::vector<std::vector<TensorToWrite>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (const TensorToWrite& t : tensors) {
    if (shard_bytes > 0 && shard_bytes + t.bytes.size() > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(t);
    shard_bytes += t.bytes.size();
    total_bytes += t.bytes.size();
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (shards.size() == 1) {
    std::remove((dir + "/model.safetensors.index.json").c_str());
    return WriteSafetensors(dir + "/model.safetensors", shards[0], metadata);
  }
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name =
        absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    MOERL_RETURN_IF_ERROR(WriteSafetensors(dir + "/" + name, shards[i], metadata));
    for (const TensorToWrite& t : shards[i]) weight_map[t.name] = name;
  }
  json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
  std::remove((dir + "/model.safetensors").c_str());
  return WriteTextFile(dir + "/model.safetensors.index.json", index.dump(2) + "\n");
}

}  // namespace moerl
