#include "trainer/deterministic.h"

#include <ATen/Context.h>

#include <cstdlib>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moerl {
namespace {

// A variable that must be one of `accepted`, else set to `fallback` when unset.
absl::Status Require(const EnvLookup& env, const EnvSetter& set, const std::string& name,
                     const std::vector<std::string>& accepted, const std::string& fallback) {
  const std::optional<std::string> value = env(name);
  if (!value.has_value() || value->empty()) {
    set(name, fallback);
    return absl::OkStatus();
  }
  for (const std::string& a : accepted) {
    if (*value == a) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("actor.megatron.use_deterministic_algorithms=true needs ", name, " unset or one of ",
                   absl::StrJoin(accepted, ", "), "; it is \"", *value, "\""));
}

}  // namespace

EnvSetter ProcessEnvironmentSetter() {
  return [](const std::string& name, const std::string& value) { setenv(name.c_str(), value.c_str(), 1); };
}

absl::Status SetDeterministicEnvironment(const EnvLookup& env, const EnvSetter& set) {
  // Megatron's list (megatron/training/determinism.py); Tree's chain order varies.
  if (absl::Status s = Require(env, set, "NCCL_ALGO", {"Ring", "CollnetDirect", "CollnetChain", "^NVLS"}, "Ring");
      !s.ok()) {
    return s;
  }
  return Require(env, set, "CUBLAS_WORKSPACE_CONFIG", {":4096:8", ":16:8"}, ":4096:8");
}

void EnableDeterministicAlgorithms(bool on) { at::globalContext().setDeterministicAlgorithms(on, /*warn_only=*/false); }

}  // namespace moerl
