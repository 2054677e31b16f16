// Rules for experiment_name and trial_name, which become directory names
// under cluster.fileroot: AReaL's character rules (experiment_name without
// '_', trial_name without '-', neither with '/') plus no path traversal.
//
//   MOERL_RETURN_IF_ERROR(ValidateExperimentName("gsm8k-grpo"));
//   MOERL_RETURN_IF_ERROR(ValidateTrialName("trial0"));
//   RunDirectory("/tmp/moerl", "gsm8k-grpo", "trial0");  // "/tmp/moerl/gsm8k-grpo/trial0"
//
// Pure functions, thread-safe.
#ifndef MOERL_COMMON_CONFIG_NAMES_H_
#define MOERL_COMMON_CONFIG_NAMES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace moerl {

// Longest accepted name; directory names stay well below NAME_MAX.
inline constexpr size_t kMaxRunNameLength = 128;

// Non-empty, at most kMaxRunNameLength bytes of [A-Za-z0-9.-], not starting
// with '.' or '-'. The error names the key, the byte and a corrected name.
absl::Status ValidateExperimentName(absl::string_view name);
// As above with [A-Za-z0-9._] ('_' allowed, '-' not).
absl::Status ValidateTrialName(absl::string_view name);

// <fileroot>/<experiment>/<trial>, without a doubled '/'.
std::string RunDirectory(absl::string_view fileroot, absl::string_view experiment,
                         absl::string_view trial);

}  // namespace moerl

#endif  // MOERL_COMMON_CONFIG_NAMES_H_
