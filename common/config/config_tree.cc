// Loading, lookup and origins. Overrides are in overrides.cc, interpolation
// in interpolation.cc.
//
// yaml-cpp pitfall: `YAML::Node a = ...; a = b;` rebinds the *contents* of
// a's node (it mutates the tree), and a non-const operator[] may insert keys.
// This file walks trees with const lookups (ChildOf) and Node::reset().
#include "common/config/config_tree.h"

#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config/tree_internal.h"
#include "common/file_util.h"
#include "common/status.h"

namespace moerl {
namespace config_internal {

YAML::Node ChildOf(const YAML::Node& map, const std::string& key) {
  if (map.IsMap()) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string JoinPath(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : absl::StrCat(parent, ".", key);
}

std::string MarkText(absl::string_view source, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return std::string(source);
  return absl::StrCat(source, ":", mark.line + 1, ":", mark.column + 1);
}

}  // namespace config_internal

using config_internal::ChildOf;
using config_internal::JoinPath;
using config_internal::kMaxDepth;
using config_internal::kMaxNodes;
using config_internal::MarkText;

namespace {

// Bounds on the tree after aliases are expanded: `b: {x: *a, y: *a}` chains
// double the size per level, and an alias inside its own anchor makes a cycle.

// Rejects non-string and duplicate keys anywhere in the tree, and trees past
// kMaxNodes / kMaxDepth (`budget` counts the nodes left).
absl::Status CheckKeys(const YAML::Node& node, const std::string& path, absl::string_view source,
                       int depth, int* budget) {
  if (--*budget < 0 || depth > kMaxDepth) {
    return absl::InvalidArgumentError(absl::StrCat(
        MarkText(source, node.Mark()), ": the config is too large or too deep after expanding "
        "YAML aliases (more than ", kMaxNodes, " values or ", kMaxDepth, " levels, at '", path,
        "'); a config is a few hundred keys: check for recursive '&anchor' / '*alias' use"));
  }
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      MOERL_RETURN_IF_ERROR(
          CheckKeys(node[i], absl::StrCat(path, "[", i, "]"), source, depth + 1, budget));
    }
    return absl::OkStatus();
  }
  if (!node.IsMap()) return absl::OkStatus();
  std::map<std::string, YAML::Mark> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(MarkText(source, it->first.Mark()), ": keys must be plain strings, found a ",
                       it->first.IsMap() ? "mapping" : "sequence", " as a key under '",
                       path.empty() ? "<top level>" : path, "'"));
    }
    const std::string& key = it->first.Scalar();
    auto [first, inserted] = seen.emplace(key, it->first.Mark());
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          MarkText(source, it->first.Mark()), ": duplicate key '", JoinPath(path, key),
          "' (first set at line ", first->second.line + 1, "); keep only one of them"));
    }
    MOERL_RETURN_IF_ERROR(CheckKeys(it->second, JoinPath(path, key), source, depth + 1, budget));
  }
  return absl::OkStatus();
}

}  // namespace

namespace config_internal {

absl::Status CheckTree(const YAML::Node& node, absl::string_view source) {
  int budget = kMaxNodes;
  return CheckKeys(node, "", source, 0, &budget);
}

size_t CountNodes(const YAML::Node& node, size_t limit) {
  size_t n = 1;
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end() && n <= limit; ++it) {
      n += CountNodes(it->second, limit - n);
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size() && n <= limit; ++i) n += CountNodes(node[i], limit - n);
  }
  return n;
}

}  // namespace config_internal

ConfigTree::ConfigTree() : root_(YAML::NodeType::Map) {}

absl::StatusOr<ConfigTree> ConfigTree::FromYamlText(absl::string_view text,
                                                    absl::string_view source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(MarkText(source, e.mark), ": not valid YAML: ", e.msg));
  }
  if (root.IsNull() || !root.IsDefined()) root.reset(YAML::Node(YAML::NodeType::Map));
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": the top level must be a mapping of keys (experiment_name: ..., cluster: ...), "
                "found a ",
        root.IsSequence() ? "sequence" : "scalar"));
  }
  MOERL_RETURN_IF_ERROR(config_internal::CheckTree(root, source));
  ConfigTree tree;
  tree.root_.reset(root);
  tree.RecordOrigins(root, "", std::string(source));
  return tree;
}

absl::StatusOr<ConfigTree> ConfigTree::FromFile(const std::string& path) {
  MOERL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, "config file"));
  return FromYamlText(text, path);
}

void ConfigTree::RecordOrigins(const YAML::Node& node, const std::string& path,
                               const std::string& source) {
  if (!node.IsMap()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string child = JoinPath(path, it->first.Scalar());
    const YAML::Mark mark = (it->second.IsMap() || it->second.Mark().is_null()) ? it->first.Mark()
                                                                             : it->second.Mark();
    origins_[child] = MarkText(source, mark);
    RecordOrigins(it->second, child, source);
  }
}

YAML::Node ConfigTree::Find(absl::string_view path) const {
  YAML::Node cur = root_;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    YAML::Node next = ChildOf(cur, std::string(part));
    if (!next.IsDefined()) return next;
    cur.reset(next);
  }
  return cur;
}

std::string ConfigTree::Origin(absl::string_view path) const {
  std::string p(path);
  while (!p.empty()) {
    auto it = origins_.find(p);
    if (it != origins_.end()) return it->second;
    const size_t dot = p.rfind('.');
    if (dot == std::string::npos) break;
    p.resize(dot);
  }
  return "default";
}

namespace {

void CollectLeaves(const YAML::Node& node, const std::string& path, std::vector<std::string>* out) {
  if (node.IsMap() && node.size() > 0) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      CollectLeaves(it->second, JoinPath(path, it->first.Scalar()), out);
    }
    return;
  }
  if (!path.empty()) out->push_back(path);
}

}  // namespace

std::vector<std::string> ConfigTree::LeafPaths() const {
  std::vector<std::string> out;
  CollectLeaves(root_, "", &out);
  return out;
}

ConfigTree ConfigTree::Clone() const {
  ConfigTree copy;
  copy.root_.reset(YAML::Clone(root_));
  copy.origins_ = origins_;
  return copy;
}

absl::Status ConfigTree::SetPath(absl::string_view path, const YAML::Node& value,
                                 absl::string_view origin) {
  MOERL_ASSIGN_OR_RETURN(std::vector<std::string> parts, SplitKeyPath(path));
  YAML::Node cur = root_;
  std::string walked;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    walked = JoinPath(walked, parts[i]);
    YAML::Node next = ChildOf(cur, parts[i]);
    if (!next.IsDefined() || next.IsNull()) {
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next.reset(ChildOf(cur, parts[i]));
    } else if (!next.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot set '", path, "': '", walked, "' holds the value '", ShortValue(next), "' (",
          Origin(walked), "), not a mapping of keys"));
    }
    cur.reset(next);
  }
  cur[parts.back()] = value;
  const std::string full(path);
  for (auto it = origins_.lower_bound(full); it != origins_.end();) {
    if (it->first == full || absl::StartsWith(it->first, full + ".")) {
      it = origins_.erase(it);
    } else {
      break;
    }
  }
  origins_[full] = std::string(origin);
  std::vector<std::string> below;
  CollectLeaves(value, full, &below);
  for (const std::string& leaf : below) origins_[leaf] = std::string(origin);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SplitKeyPath(absl::string_view path) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key '", path, "' has an empty part; write dotted names like 'cluster.n_nodes'"));
    }
    for (char c : parts[i]) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
        return absl::InvalidArgumentError(absl::StrCat(
            "key '", path, "' contains '", std::string(1, c),
            "'; keys are letters, digits, '_' and '-', joined by '.'"));
      }
    }
  }
  return parts;
}

std::string ShortValue(const YAML::Node& node) {
  std::string text;
  if (!node.IsDefined()) {
    text = "<missing>";
  } else if (node.IsNull()) {
    text = "null";
  } else if (node.IsScalar()) {
    text = node.Scalar();
  } else {
    YAML::Emitter out;
    out.SetMapFormat(YAML::Flow);
    out.SetSeqFormat(YAML::Flow);
    out << node;
    text = out.c_str();
  }
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

}  // namespace moerl
