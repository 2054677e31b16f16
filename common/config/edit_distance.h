// Closest-match helpers for "did you mean ...?" hints in config and
// allocation_mode errors.
//
//   ClosestMatch("n_gpu_per_node", {"n_nodes", "n_gpus_per_node"});
//   // -> "n_gpus_per_node"
//
// Pure functions, thread-safe.
#ifndef MOERL_COMMON_CONFIG_EDIT_DISTANCE_H_
#define MOERL_COMMON_CONFIG_EDIT_DISTANCE_H_

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace moerl {

// Levenshtein distance (insert, delete, substitute each cost 1), bytewise.
inline size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The candidate nearest to `word`, or "" when none is within
// max(2, |word| / 3) edits (beyond that a suggestion is noise) or a prefix
// of the other.
inline std::string ClosestMatch(absl::string_view word, const std::vector<std::string>& candidates) {
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  std::string best;
  size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    if (candidate.empty()) continue;
    size_t d = EditDistance(word, candidate);
    // A truncated or over-long word ("gpu_mem" for "gpu_memory_gib") is a
    // good guess even when many edits apart.
    const bool prefix = !word.empty() && (absl::StartsWith(candidate, word) ||
                                          absl::StartsWith(word, candidate));
    if (prefix) d = std::min(d, limit);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

}  // namespace moerl

#endif  // MOERL_COMMON_CONFIG_EDIT_DISTANCE_H_
