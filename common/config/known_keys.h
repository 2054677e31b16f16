// The top-level keys a moerl config may hold: AReaL's GRPO config sections
// (areal-reference.md §b.2) plus moerl's own. A constant table, not a
// registry: the pipeline's binaries own the sections below it (each binary's
// ConfigSchema checks the keys inside the sections it owns), and this table
// lets every binary catch a misspelt section name.
//
//   KnownTopLevelKeys();  // {"experiment_name", "trial_name", ..., "cluster", ...}
//
// Thread-safe (immutable).
#ifndef MOERL_COMMON_CONFIG_KNOWN_KEYS_H_
#define MOERL_COMMON_CONFIG_KNOWN_KEYS_H_

#include <string>
#include <vector>

namespace moerl {

std::vector<std::string> KnownTopLevelKeys();

}  // namespace moerl

#endif  // MOERL_COMMON_CONFIG_KNOWN_KEYS_H_
