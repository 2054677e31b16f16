#include "trainer/weight_publisher.h"

#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/weights_dir.h"
#include "nlohmann/json.hpp"
#include "trainer/model/hf_weights.h"
#include "trainer/model/logprobs.h"

namespace moerl {
namespace {

constexpr const char* kTokenizerFiles[] = {"tokenizer.json",          "tokenizer_config.json",
                                           "vocab.json",              "merges.txt",
                                           "special_tokens_map.json", "generation_config.json"};

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The model's parameters copied into a fresh model of `dtype`.
std::shared_ptr<Qwen3Model> CopyAs(Qwen3Model& model, c10::ScalarType dtype) {
  auto copy = std::make_shared<Qwen3Model>(model.config());
  at::NoGradGuard no_grad;
  auto src = model.named_parameters();
  for (auto& dst : copy->named_parameters()) dst.value().copy_(src[dst.key()]);
  copy->to(dtype);
  return copy;
}

}  // namespace

std::vector<std::vector<int64_t>> ProbeSequences(int64_t vocab_size) {
  std::vector<std::vector<int64_t>> seqs;
  const int64_t lengths[] = {8, 12, 16};
  int64_t k = 0;
  for (int64_t len : lengths) {
    std::vector<int64_t> seq;
    for (int64_t j = 0; j < len; ++j, ++k) seq.push_back((1 + 7919 * k + 104729 * (k % 3)) % vocab_size);
    seqs.push_back(std::move(seq));
  }
  return seqs;
}

absl::StatusOr<std::string> ProbeJson(Qwen3Model& model, int64_t version) {
  const std::vector<std::vector<int64_t>> seqs = ProbeSequences(model.config().vocab_size);
  MOERL_ASSIGN_OR_RETURN(std::vector<std::vector<float>> logprobs,
                         ScoreSequences(model, seqs, std::vector<int64_t>(seqs.size(), 1), 1.0));
  nlohmann::json out = {{"format_version", kProbeFormatVersion}, {"version", version}};
  out["sequences"] = nlohmann::json::array();
  for (size_t i = 0; i < seqs.size(); ++i) {
    out["sequences"].push_back({{"input_ids", seqs[i]}, {"logprobs", logprobs[i]}});
  }
  return out.dump() + "\n";
}

WeightPublisher::WeightPublisher(WeightPublisherOptions options) : options_(std::move(options)) {}

absl::Status WeightPublisher::Publish(Qwen3Model& model, int64_t version) {
  std::error_code ec;
  std::filesystem::create_directories(options_.weights_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create '", options_.weights_dir, "': ", ec.message()));
  }
  std::shared_ptr<Qwen3Model> copy;
  Qwen3Model* published = &model;
  if (model.dtype() != options_.dtype) {
    copy = CopyAs(model, options_.dtype);
    published = copy.get();
  }
  CheckpointWriteOptions write;
  write.max_shard_bytes = options_.max_shard_bytes;
  MOERL_ASSIGN_OR_RETURN(write.extra_files["probe.json"], ProbeJson(*published, version));
  if (!options_.tokenizer_dir.empty()) {
    for (const char* name : kTokenizerFiles) {
      const std::string path = absl::StrCat(options_.tokenizer_dir, "/", name);
      if (!IsFile(path)) continue;
      MOERL_ASSIGN_OR_RETURN(write.extra_files[name], ReadFileToString(path, "tokenizer file"));
    }
  }
  MOERL_RETURN_IF_ERROR(SaveHfCheckpoint(*published, VersionDir(options_.weights_dir, version),
                                         options_.dtype, std::move(write)));
  MOERL_RETURN_IF_ERROR(WriteLatestVersion(options_.weights_dir, version));
  MOERL_ASSIGN_OR_RETURN(std::vector<int64_t> removed, PruneVersions(options_.weights_dir, options_.keep));
  if (!removed.empty()) MOERL_LOG(INFO) << "removed weights versions " << absl::StrJoin(removed, ", ");
  return absl::OkStatus();
}

}  // namespace moerl
