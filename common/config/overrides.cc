// Hydra-style command-line overrides on a ConfigTree:
//   a.b=v    change an existing key        (error if absent: use +a.b=v;
//            LoadConfig adds it when its section is a known one)
//   +a.b=v   add a key that is not there   (error if present: use a.b=v)
//   ++a.b=v  add or change
//   ~a.b     delete (also ~a.b=<anything>)
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/config/config_tree.h"
#include "common/config/edit_distance.h"
#include "common/config/known_keys.h"
#include "common/config/tree_internal.h"
#include "common/status.h"

namespace moerl {
namespace {

using config_internal::ChildOf;

// The override's value as a YAML node: flow scalars, lists and maps; an
// empty value is the empty string.
absl::StatusOr<YAML::Node> ParseValue(absl::string_view argument, absl::string_view value) {
  if (value.empty()) return YAML::Node(std::string());
  try {
    YAML::Node node = YAML::Load(std::string(value));
    if (!node.IsDefined()) return YAML::Node(std::string());
    MOERL_RETURN_IF_ERROR(config_internal::CheckTree(node, absl::StrCat("override '", argument, "'")));
    return node;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "override '", argument, "': the value is not valid YAML (", e.msg, " at byte ",
        e.mark.pos < 0 ? 0 : e.mark.pos, "); quote it for the shell and for YAML, e.g. ",
        "'key=\"a: b\"'"));
  }
}

bool IsKnownTopLevel(const std::string& name) {
  const std::vector<std::string> known = KnownTopLevelKeys();
  return std::find(known.begin(), known.end(), name) != known.end();
}

// A key one or two edits from one the YAML has is taken for a typo of it.
bool NearMiss(absl::string_view key, const std::vector<std::string>& leaves) {
  for (const std::string& leaf : leaves) {
    if (EditDistance(key, leaf) <= 2) return true;
  }
  return false;
}

}  // namespace

absl::Status ConfigTree::ApplyOverride(absl::string_view argument, bool plain_adds_known_keys) {
  enum class Mode { kChange, kAdd, kForce, kDelete };
  Mode mode = Mode::kChange;
  absl::string_view rest = argument;
  if (absl::ConsumePrefix(&rest, "++")) {
    mode = Mode::kForce;
  } else if (absl::ConsumePrefix(&rest, "+")) {
    mode = Mode::kAdd;
  } else if (absl::ConsumePrefix(&rest, "~")) {
    mode = Mode::kDelete;
  }
  const size_t eq = rest.find('=');
  if (eq == absl::string_view::npos && mode != Mode::kDelete) {
    return absl::InvalidArgumentError(absl::StrCat(
        "override '", argument, "' has no '='; write key=value, e.g. cluster.n_nodes=2"));
  }
  const absl::string_view key = eq == absl::string_view::npos ? rest : rest.substr(0, eq);
  const absl::string_view value = eq == absl::string_view::npos ? "" : rest.substr(eq + 1);
  absl::StatusOr<std::vector<std::string>> parts = SplitKeyPath(key);
  if (!parts.ok()) return Annotate(parts.status(), absl::StrCat("override '", argument, "'"));

  const YAML::Node existing = Find(key);
  const bool present = existing.IsDefined();
  const std::string origin = absl::StrCat("override '", argument, "'");
  switch (mode) {
    case Mode::kChange:
      if (!present && plain_adds_known_keys && IsKnownTopLevel((*parts)[0]) &&
          !NearMiss(key, LeafPaths())) {
        break;  // a key of AReaL's config the YAML leaves at its default
      }
      if (!present) {
        const std::string closest = ClosestMatch(key, LeafPaths());
        return absl::InvalidArgumentError(absl::StrCat(
            "override '", argument, "': key '", key, "' is not in the config",
            closest.empty() ? "" : absl::StrCat(" (did you mean '", closest, "'?)"),
            "; to add it, write '+", argument, "'"));
      }
      break;
    case Mode::kAdd:
      if (present) {
        return absl::InvalidArgumentError(absl::StrCat(
            "override '", argument, "': key '", key, "' is already set to '",
            ShortValue(existing), "' (", Origin(key), "); to change it, write '",
            argument.substr(1), "' (or '+", argument, "' to add or change)"));
      }
      break;
    case Mode::kDelete: {
      if (!present) {
        return absl::InvalidArgumentError(absl::StrCat("override '", argument, "': key '", key,
                                                       "' is not in the config, nothing to delete"));
      }
      YAML::Node parent = root_;
      for (size_t i = 0; i + 1 < parts->size(); ++i) parent.reset(ChildOf(parent, (*parts)[i]));
      parent.remove(parts->back());
      const std::string full(key);
      for (auto it = origins_.lower_bound(full); it != origins_.end();) {
        if (it->first == full || absl::StartsWith(it->first, full + ".")) {
          it = origins_.erase(it);
        } else {
          break;
        }
      }
      return absl::OkStatus();
    }
    case Mode::kForce:
      break;
  }
  MOERL_ASSIGN_OR_RETURN(YAML::Node node, ParseValue(argument, value));
  return Annotate(SetPath(key, node, origin), absl::StrCat("override '", argument, "'"));
}

}  // namespace moerl
