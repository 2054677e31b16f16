#include "common/config/cli.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace moerl {

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                             const std::vector<std::string>& boolean_flags) {
  CommandLine out;
  const std::string usage = absl::StrCat(
      "usage: --config <file.yaml> [key=value | +key=value | ++key=value | ~key ...]",
      boolean_flags.empty() ? "" : absl::StrCat(" [", absl::StrJoin(boolean_flags, "] ["), "]"));
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--config") {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--config needs a file name; ", usage));
      }
      out.config_path = args[++i];
    } else if (absl::StartsWith(arg, "--config=")) {
      out.config_path = arg.substr(9);
    } else if (absl::StartsWith(arg, "--")) {
      bool known = false;
      for (const std::string& f : boolean_flags) known = known || f == arg;
      if (!known) {
        return absl::InvalidArgumentError(absl::StrCat("unknown flag '", arg, "'; ", usage));
      }
      out.flags.insert(arg);
    } else if (arg.find('=') != std::string::npos || absl::StartsWith(arg, "~")) {
      out.overrides.push_back(arg);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected argument '", arg, "': overrides are key=value (a value with spaces or "
          "parentheses needs shell quotes, see docs/config.md); ", usage));
    }
  }
  if (out.config_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("missing --config <file.yaml>; ", usage));
  }
  return out;
}

bool TakeFlag(const std::string& flag, std::vector<std::string>* args) {
  const size_t before = args->size();
  args->erase(std::remove(args->begin(), args->end(), flag), args->end());
  return args->size() != before;
}

absl::StatusOr<ConfigTree> LoadConfig(const CommandLine& command_line) {
  MOERL_ASSIGN_OR_RETURN(ConfigTree tree, ConfigTree::FromFile(command_line.config_path));
  for (const std::string& o : command_line.overrides) MOERL_RETURN_IF_ERROR(tree.ApplyOverride(o, /*plain_adds_known_keys=*/true));
  MOERL_RETURN_IF_ERROR(tree.ResolveInterpolations());
  return tree;
}

}  // namespace moerl
