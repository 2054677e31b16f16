// `${a.b}` interpolation (OmegaConf's absolute form only): every scalar that
// mentions `${...}` is resolved once, depth-first, with cycle detection.
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/config_tree.h"
#include "common/config/edit_distance.h"
#include "common/config/tree_internal.h"
#include "common/status.h"

namespace moerl {
namespace {

// One piece of an interpolated string: literal text or a reference.
struct Piece {
  bool reference = false;
  std::string text;  // literal text, or the referenced key path
};

absl::StatusOr<std::vector<Piece>> SplitPieces(const std::string& path, const std::string& value,
                                               const std::string& origin) {
  std::vector<Piece> pieces;
  std::string literal;
  size_t i = 0;
  auto error = [&](size_t at, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("key '", path, "' (", origin, "): value '",
                                                   value, "' at byte ", at, ": ", what));
  };
  while (i < value.size()) {
    if (value.compare(i, 3, "\\${") == 0) {
      literal += "${";
      i += 3;
      continue;
    }
    if (value.compare(i, 2, "${") != 0) {
      literal += value[i++];
      continue;
    }
    const size_t close = value.find('}', i + 2);
    if (close == std::string::npos) {
      return error(i, "'${' is not closed by '}'; write ${a.b}, or \\${ for a literal '${'");
    }
    const std::string ref = value.substr(i + 2, close - i - 2);
    if (ref.find("${") != std::string::npos) {
      return error(i, "nested interpolation is not supported");
    }
    if (ref.find(':') != std::string::npos) {
      return error(i, absl::StrCat("resolvers such as '${", ref,
                                   "}' are not supported; only ${a.b} key references"));
    }
    if (absl::StartsWith(ref, ".")) {
      return error(i, "relative references (${.x}) are not supported; write the full path");
    }
    absl::StatusOr<std::vector<std::string>> parts = SplitKeyPath(ref);
    if (!parts.ok()) return error(i, parts.status().message());
    if (!literal.empty()) pieces.push_back({false, std::move(literal)});
    literal.clear();
    pieces.push_back({true, ref});
    i = close + 1;
  }
  if (!literal.empty()) pieces.push_back({false, std::move(literal)});
  return pieces;
}

}  // namespace

absl::Status ConfigTree::ResolveInterpolations() {
  const std::vector<std::string> leaves = LeafPaths();
  std::set<std::string> done;
  size_t copied = 0;  // nodes copied by whole-value references
  std::vector<std::string> stack;

  // Resolves the scalar at `path` (a no-op for anything without "${").
  std::function<absl::Status(const std::string&)> resolve =
      [&](const std::string& path) -> absl::Status {
    if (done.count(path)) return absl::OkStatus();
    const YAML::Node node = Find(path);
    if (!node.IsScalar() || node.Scalar().find("${") == std::string::npos) {
      done.insert(path);
      return absl::OkStatus();
    }
    if (stack.size() >= 64) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key '", path, "' (", Origin(path), "): interpolation chain deeper than 64 (",
          stack.front(), " -> ... -> ", path, ")"));
    }
    for (const std::string& open : stack) {
      if (open == path) {
        std::vector<std::string> cycle(stack.begin(), stack.end());
        cycle.push_back(path);
        return absl::InvalidArgumentError(absl::StrCat(
            "interpolation cycle: ", absl::StrJoin(cycle, " -> "), " (", Origin(path), ")"));
      }
    }
    const std::string value = node.Scalar();
    const std::string origin = Origin(path);
    MOERL_ASSIGN_OR_RETURN(std::vector<Piece> pieces, SplitPieces(path, value, origin));
    stack.push_back(path);
    std::string result;
    YAML::Node whole;  // set when the value is exactly one reference
    for (const Piece& piece : pieces) {
      if (!piece.reference) {
        result += piece.text;
        continue;
      }
      // Resolve the target, and everything under it when it is a mapping.
      for (const std::string& leaf : leaves) {
        if (leaf == piece.text || absl::StartsWith(leaf, piece.text + ".")) {
          MOERL_RETURN_IF_ERROR(resolve(leaf));
        }
      }
      MOERL_RETURN_IF_ERROR(resolve(piece.text));
      const YAML::Node target = Find(piece.text);
      if (!target.IsDefined()) {
        const std::string closest = ClosestMatch(piece.text, leaves);
        return absl::InvalidArgumentError(absl::StrCat(
            "key '", path, "' (", origin, "): '${", piece.text, "}' refers to a key that is not "
            "in the config", closest.empty() ? "" : absl::StrCat(" (did you mean '", closest, "'?)")));
      }
      if (pieces.size() == 1) {
        copied += config_internal::CountNodes(target, config_internal::kMaxNodes);
        if (copied > static_cast<size_t>(config_internal::kMaxNodes)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "key '", path, "' (", origin, "): interpolation copies more than ",
              config_internal::kMaxNodes, " values; references to large sections multiply"));
        }
        whole.reset(YAML::Clone(target));
      } else if (target.IsScalar()) {
        result += target.Scalar();
      } else if (target.IsNull()) {
        result += "null";
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "key '", path, "' (", origin, "): '${", piece.text, "}' is a ",
            target.IsMap() ? "mapping" : "sequence",
            " and cannot be spliced into a string; reference it alone, as '${", piece.text, "}'"));
      }
    }
    stack.pop_back();
    done.insert(path);
    return SetPath(path, pieces.size() == 1 && pieces[0].reference ? whole : YAML::Node(result),
                   origin);
  };

  for (const std::string& leaf : leaves) MOERL_RETURN_IF_ERROR(resolve(leaf));
  return absl::OkStatus();
}

}  // namespace moerl
