// Test helper: the oracle fixture written by tools/model/make_oracle_fixture.py
// (a safetensors file whose __metadata__ is the header: format
// "moerl-model-oracle", version "1") read into at::Tensors.
//
//   MOERL_ASSIGN_OR_RETURN(auto fx, OracleFixture::Open("trainer/model/testdata/moe/oracle.safetensors"));
//   at::Tensor logits_blv = fx->Get("logits");
//
// Thread-compatible; tensors returned are owned copies.
#ifndef MOERL_TRAINER_MODEL_FIXTURE_H_
#define MOERL_TRAINER_MODEL_FIXTURE_H_

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/safetensors/safetensors.h"

namespace moerl {

class OracleFixture {
 public:
  // FailedPrecondition if the header's format or version is not the expected one.
  static absl::StatusOr<std::unique_ptr<OracleFixture>> Open(const std::string& path);
  bool Has(const std::string& name) const { return file_->Find(name) != nullptr; }
  // Undefined tensor when absent.
  at::Tensor Get(const std::string& name) const;
  std::vector<std::string> NamesWithPrefix(const std::string& prefix) const;

 private:
  std::unique_ptr<SafetensorsFile> file_;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_FIXTURE_H_
