// Internal to common/config: small yaml-cpp helpers shared by the tree,
// override, interpolation and schema files.
//
//   YAML::Node child = ChildOf(map, "cluster");   // !IsDefined() if absent
//
// Pure functions; the returned nodes share storage with their tree.
#ifndef MOERL_COMMON_CONFIG_TREE_INTERNAL_H_
#define MOERL_COMMON_CONFIG_TREE_INTERNAL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "yaml-cpp/yaml.h"

namespace moerl {
namespace config_internal {

// The value under `key` of a mapping, without inserting anything; an
// undefined node when absent or when `map` is not a mapping.
YAML::Node ChildOf(const YAML::Node& map, const std::string& key);
// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string JoinPath(const std::string& parent, const std::string& key);
// "file.yaml:3:7" (1-based), or just `source` for a null mark.
std::string MarkText(absl::string_view source, const YAML::Mark& mark);

// Bounds on a tree after YAML aliases are expanded: `b: {x: *a, y: *a}`
// chains double the size per level, and an alias inside its own anchor makes
// a cycle. Interpolation copies count against the same budget.
inline constexpr int kMaxNodes = 100000;
inline constexpr int kMaxDepth = 64;

// Rejects non-string and duplicate keys, and trees past the bounds above.
absl::Status CheckTree(const YAML::Node& node, absl::string_view source);
// Nodes in `node` (mappings, sequences and scalars), counting stops past `limit`.
size_t CountNodes(const YAML::Node& node, size_t limit);

}  // namespace config_internal
}  // namespace moerl

#endif  // MOERL_COMMON_CONFIG_TREE_INTERNAL_H_
