// ConfigTree: one YAML file plus Hydra-style command-line overrides, with
// `${a.b}` interpolation resolved, remembering where every value came from.
// It knows nothing about which keys exist: each binary checks the keys it
// reads with a ConfigSchema (common/config/schema.h).
//
//   MOERL_ASSIGN_OR_RETURN(ConfigTree tree, ConfigTree::FromFile("grpo.yaml"));
//   MOERL_RETURN_IF_ERROR(tree.ApplyOverride("cluster.n_nodes=4"));   // key must exist
//   MOERL_RETURN_IF_ERROR(tree.ApplyOverride("+actor.megatron.use_deterministic_algorithms=true"));
//   MOERL_RETURN_IF_ERROR(tree.ResolveInterpolations());
//   tree.Origin("cluster.n_nodes");   // "override 'cluster.n_nodes=4'"
//
// Override forms (Hydra's rules): `a.b=v` changes an existing key, `+a.b=v`
// adds a key that is not there yet, `++a.b=v` adds or changes, `~a.b`
// deletes. Values are YAML flow scalars: `null`, `[1,2]`, `"quoted"`, and
// an empty value is the empty string.
//
// Copyable value (deep copies through Clone()); not thread-safe to mutate.
#ifndef MOERL_COMMON_CONFIG_CONFIG_TREE_H_
#define MOERL_COMMON_CONFIG_CONFIG_TREE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "yaml-cpp/yaml.h"

namespace moerl {

class ConfigTree {
 public:
  // An empty mapping.
  ConfigTree();

  // Parses `text`; `source` names it in errors ("grpo.yaml"). The top level
  // must be a mapping (or empty); keys must be unique plain strings.
  static absl::StatusOr<ConfigTree> FromYamlText(absl::string_view text,
                                                 absl::string_view source);
  static absl::StatusOr<ConfigTree> FromFile(const std::string& path);

  // One command-line override; errors name the argument and the key.
  // With `plain_adds_known_keys`, `a.b=v` on a missing key adds it when its
  // top-level name is a known section or key (known_keys.h) and it is not
  // one or two edits from a key the tree has (then it is taken for a typo),
  // as Hydra does for the keys of AReaL's structured config; the binary's
  // ConfigSchema still rejects a misspelt key inside the sections it owns.
  absl::Status ApplyOverride(absl::string_view argument, bool plain_adds_known_keys = false);

  // Replaces every `${a.b}` (absolute dotted path) by the value it names; a
  // value that is exactly one `${...}` takes the referenced node (any type).
  // `\${` is a literal `${`. Cycles and dangling references are errors.
  absl::Status ResolveInterpolations();

  // The node at dotted `path`, or an invalid (!IsDefined()) node. The returned
  // node shares storage with the tree: do not modify it.
  YAML::Node Find(absl::string_view path) const;
  // "grpo.yaml:12:3", "override 'a.b=1'", or "default" when unknown.
  std::string Origin(absl::string_view path) const;
  // Every leaf (scalar, sequence, null) and empty mapping, as dotted paths.
  std::vector<std::string> LeafPaths() const;

  const YAML::Node& root() const { return root_; }
  ConfigTree Clone() const;

 private:
  absl::Status SetPath(absl::string_view path, const YAML::Node& value, absl::string_view origin);
  void RecordOrigins(const YAML::Node& node, const std::string& path, const std::string& source);

  YAML::Node root_;
  std::map<std::string, std::string> origins_;
};

// "a.b.c" -> {"a", "b", "c"}; InvalidArgument for empty segments or
// characters outside [A-Za-z0-9_-].
absl::StatusOr<std::vector<std::string>> SplitKeyPath(absl::string_view path);

// A scalar's text for error messages, shortened to 60 bytes.
std::string ShortValue(const YAML::Node& node);

}  // namespace moerl

#endif  // MOERL_COMMON_CONFIG_CONFIG_TREE_H_
