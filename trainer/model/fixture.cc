#include "trainer/model/fixture.h"

#include "common/logging.h"

#include <ATen/ops/empty.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moerl {

absl::StatusOr<std::unique_ptr<OracleFixture>> OracleFixture::Open(const std::string& path) {
  auto file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  const auto& meta = (*file)->metadata();
  auto format = meta.find("format");
  auto version = meta.find("version");
  if (format == meta.end() || format->second != "moerl-model-oracle" || version == meta.end() ||
      version->second != "1") {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": not a moerl-model-oracle v1 fixture; regenerate it with ",
                     "python3 tools/model/make_oracle_fixture.py"));
  }
  auto fx = std::unique_ptr<OracleFixture>(new OracleFixture());
  fx->file_ = std::move(*file);
  return fx;
}

at::Tensor OracleFixture::Get(const std::string& name) const {
  const TensorInfo* info = file_->Find(name);
  // A fixture without the tensor is broken test data: fail naming it rather
  // than hand an undefined tensor to the comparison.
  MOERL_CHECK(info != nullptr) << "oracle fixture has no tensor \"" << name
                               << "\"; regenerate it with tools/model/make_oracle_fixture.py";
  c10::ScalarType type = at::kFloat;
  if (info->dtype == Dtype::kI64) type = at::kLong;
  if (info->dtype == Dtype::kI32) type = at::kInt;
  if (info->dtype == Dtype::kBF16) type = at::kBFloat16;
  at::Tensor t = at::empty(info->shape, at::TensorOptions().dtype(type));
  auto bytes = file_->Bytes(*info);
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

std::vector<std::string> OracleFixture::NamesWithPrefix(const std::string& prefix) const {
  std::vector<std::string> out;
  for (const TensorInfo& t : file_->tensors()) {
    if (absl::StartsWith(t.name, prefix)) out.push_back(t.name);
  }
  return out;
}

}  // namespace moerl
