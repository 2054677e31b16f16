#include "common/config/names.h"

#include <cctype>
#include <string>

#include "absl/strings/str_cat.h"

namespace moerl {
namespace {

// `forbidden` is the AReaL rule's extra character, `replacement` what the
// suggested fix puts in place of any bad character.
absl::Status ValidateRunName(absl::string_view key, absl::string_view name, char forbidden,
                             char replacement) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key '", key, "' is required: set it in the YAML or on the command line (", key, "=...)"));
  }
  if (name.size() > kMaxRunNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("key '", key, "' is ", name.size(),
                                                   " bytes long; the limit is ", kMaxRunNameLength));
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat(
        "key '", key, "' = '", name, "' would point outside the run directory (path traversal)"));
  }
  std::string fixed(name);
  for (char& c : fixed) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ||
        c == forbidden) {
      c = replacement;
    }
  }
  while (!fixed.empty() && (fixed[0] == '.' || fixed[0] == '-')) fixed.erase(0, 1);
  if (fixed.empty()) fixed = key == "trial_name" ? "trial0" : "my-experiment";
  const std::string fix = absl::StrCat("; e.g. ", key, "=", fixed);
  if (name[0] == '.' || name[0] == '-') {
    return absl::InvalidArgumentError(absl::StrCat(
        "key '", key, "' = '", name, "' must not start with '", std::string(1, name[0]), "' (",
        name[0] == '.' ? "a hidden directory" : "it reads as a command-line flag", ")", fix));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const unsigned char u = static_cast<unsigned char>(c);
    std::string why;
    if (c == '/' || c == '\\') {
      why = "a path separator (names are single directory names)";
    } else if (c == forbidden) {
      why = absl::StrCat("AReaL's rule: ", key, " must not contain '", std::string(1, c), "'");
    } else if (!(std::isalnum(u) || c == '.' || c == '-' || c == '_')) {
      why = "only letters, digits, '.', '-' and '_' are allowed";
    }
    if (!why.empty()) {
      const std::string shown = (u < 0x20 || u >= 0x7f) ? absl::StrCat("byte 0x", absl::Hex(u))
                                                        : absl::StrCat("'", std::string(1, c), "'");
      return absl::InvalidArgumentError(absl::StrCat("key '", key, "' = '", name, "': ", shown,
                                                     " at byte ", i, " is not allowed: ", why, fix));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateExperimentName(absl::string_view name) {
  return ValidateRunName("experiment_name", name, '_', '-');
}

absl::Status ValidateTrialName(absl::string_view name) {
  return ValidateRunName("trial_name", name, '-', '_');
}

std::string RunDirectory(absl::string_view fileroot, absl::string_view experiment,
                         absl::string_view trial) {
  std::string root(fileroot);
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return absl::StrCat(root, root == "/" ? "" : "/", experiment, "/", trial);
}

}  // namespace moerl
