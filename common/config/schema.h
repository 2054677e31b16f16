// ConfigSchema: the keys one binary reads, bound to the fields of its own
// small typed section structs. There is no global key registry: each binary
// builds a schema from the sections it links, reads the tree, then calls
// each section's Validate().
//
//   ClusterConfig cluster;          // fields hold the defaults
//   PlannerOptions planner;
//   ConfigSchema schema;
//   cluster.Declare(&schema);       // owns "cluster": unknown cluster.* keys fail
//   planner.Declare(&schema);       // reads actor.path, does not own "actor"
//   MOERL_RETURN_IF_ERROR(schema.Read(tree));
//   MOERL_RETURN_IF_ERROR(cluster.Validate());
//
// Rules checked by Read: every top-level key is a known section or a key
// declared here (common/config/known_keys.h); every key inside a section this
// schema owns is declared; every declared key present has the right type.
// Errors name the full key path, the value, where it came from (file:line or
// the override), and the closest valid key.
//
// The schema stores raw pointers to the bound fields: they must outlive it.
// Not thread-safe; build, read, discard.
#ifndef MOERL_COMMON_CONFIG_SCHEMA_H_
#define MOERL_COMMON_CONFIG_SCHEMA_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/config/config_tree.h"

namespace moerl {

class ConfigSchema {
 public:
  ConfigSchema() = default;
  ConfigSchema(const ConfigSchema&) = delete;
  ConfigSchema& operator=(const ConfigSchema&) = delete;

  // Every key under `section` ("cluster", "actor.megatron") must be declared
  // in this schema. Other sections are left to the binaries that own them.
  void OwnSection(const std::string& section);

  void Int(const std::string& path, int64_t* out, const std::string& doc,
           int64_t min = std::numeric_limits<int64_t>::min(),
           int64_t max = std::numeric_limits<int64_t>::max());
  // `null` gives nullopt.
  void OptionalInt(const std::string& path, std::optional<int64_t>* out, const std::string& doc,
                   int64_t min = std::numeric_limits<int64_t>::min());
  void Double(const std::string& path, double* out, const std::string& doc);
  // `null` gives nullopt.
  void OptionalDouble(const std::string& path, std::optional<double>* out, const std::string& doc);
  // `true` / `false` only (no yes/no/on/off: YAML 1.1's surprises).
  void Bool(const std::string& path, bool* out, const std::string& doc);
  // Any scalar; `null` is an error.
  void String(const std::string& path, std::string* out, const std::string& doc);
  // A YAML sequence of scalars, or one scalar split at commas ("a:1,b:2");
  // items are trimmed, empty ones dropped; `null` or `[]` gives an empty list.
  void StringList(const std::string& path, std::vector<std::string>* out, const std::string& doc);
  // The same shapes, each item an integer in [min, max].
  void IntList(const std::string& path, std::vector<int64_t>* out, const std::string& doc,
               int64_t min = std::numeric_limits<int64_t>::min(),
               int64_t max = std::numeric_limits<int64_t>::max());
  // One of `choices`; `null` reads as "" when "" is a choice.
  void Choice(const std::string& path, std::string* out, std::vector<std::string> choices,
              const std::string& doc);

  // Checks the tree and fills every bound field whose key is present.
  absl::Status Read(const ConfigTree& tree) const;

  // "cluster.n_nodes  int  default 1  -- nodes in the cluster", one per line.
  std::string Describe() const;
  std::vector<std::string> DeclaredPaths() const;

 private:
  struct Key {
    std::string path;
    std::string type;
    std::string default_text;
    std::string doc;
    // Converts and stores; the message names expectations, not the key
    // (Read adds path, value and origin).
    std::function<absl::Status(const YAML::Node&)> read;
  };
  void Add(Key key);
  absl::Status CheckTopLevel(const ConfigTree& tree) const;
  absl::Status CheckOwnedSections(const ConfigTree& tree) const;
  absl::Status ReadKey(const ConfigTree& tree, const Key& key) const;

  std::vector<std::string> owned_;
  std::vector<Key> keys_;
};

}  // namespace moerl

#endif  // MOERL_COMMON_CONFIG_SCHEMA_H_
