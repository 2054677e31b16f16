// Internal to common/config: small yaml-cpp helpers shared by the tree,
// override, interpolation and schema files.
//
//   YAML::Node child = ChildOf(map, "cluster");   // !IsDefined() if absent
//
// Pure functions; the returned nodes share storage with their tree.
#ifndef MOERL_COMMON_CONFIG_TREE_INTERNAL_H_
#define MOERL_COMMON_CONFIG_TREE_INTERNAL_H_

#include <string>

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

}  // namespace config_internal
}  // namespace moerl

#endif  // MOERL_COMMON_CONFIG_TREE_INTERNAL_H_
