// The command line every moerl binary takes: `--config <yaml>` plus Hydra
// overrides (`a.b=v`, `+a.b=v`, `++a.b=v`, `~a.b`) and the binary's own
// boolean flags.
//
//   MOERL_ASSIGN_OR_RETURN(CommandLine cli, ParseCommandLine(args, {"--json"}));
//   MOERL_ASSIGN_OR_RETURN(ConfigTree tree, LoadConfig(cli));
//   bool json = cli.flags.count("--json");
//
// Pure functions (LoadConfig reads the file); thread-compatible.
#ifndef MOERL_COMMON_CONFIG_CLI_H_
#define MOERL_COMMON_CONFIG_CLI_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/config_tree.h"

namespace moerl {

struct CommandLine {
  std::string config_path;
  std::vector<std::string> overrides;  // in command-line order
  std::set<std::string> flags;         // the boolean flags given
};

// `args` excludes argv[0]. `--config` (or `--config=path`) is required.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                             const std::vector<std::string>& boolean_flags);

// Reads the YAML, applies the overrides in order, resolves interpolation.
// As with Hydra over AReaL's structured config, `a.b=v` also adds a key the
// YAML lacks when `a` is a known section (`scheduler.type=ray` needs no `+`);
// each binary's schema still rejects unknown keys in the sections it owns.
absl::StatusOr<ConfigTree> LoadConfig(const CommandLine& command_line);

// Removes every `flag` from `args`; true when there was one. For a binary's
// own flags read before the Load*Settings call, e.g. `--check_config` (every
// stage binary: load and validate the configuration, start nothing, exit 0):
//   const bool check_only = TakeFlag("--check_config", &args);
bool TakeFlag(const std::string& flag, std::vector<std::string>* args);

}  // namespace moerl

#endif  // MOERL_COMMON_CONFIG_CLI_H_
