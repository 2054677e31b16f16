#include "common/config/schema.h"

#include <cmath>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/config/edit_distance.h"
#include "common/config/known_keys.h"
#include "common/config/tree_internal.h"
#include "common/status.h"

namespace moerl {
namespace {

absl::Status Expected(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("expected ", what));
}

absl::StatusOr<std::string> ScalarText(const YAML::Node& node, absl::string_view what) {
  if (node.IsNull()) return Expected(absl::StrCat(what, ", found null"));
  if (!node.IsScalar()) {
    return Expected(absl::StrCat(what, ", found a ", node.IsMap() ? "mapping" : "sequence"));
  }
  return node.Scalar();
}

absl::StatusOr<int64_t> ParseInt(const YAML::Node& node, int64_t min, int64_t max) {
  MOERL_ASSIGN_OR_RETURN(std::string text, ScalarText(node, "an integer"));
  int64_t value = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &value)) {
    return Expected("an integer such as 4");
  }
  if (value < min || value > max) {
    return Expected(max == std::numeric_limits<int64_t>::max()
                        ? absl::StrCat("an integer >= ", min)
                        : absl::StrCat("an integer in [", min, ", ", max, "]"));
  }
  return value;
}

// The items of a sequence of scalars, or of one scalar split at commas.
absl::StatusOr<std::vector<std::string>> ListItems(const YAML::Node& node,
                                                   absl::string_view what) {
  std::vector<std::string> items;
  if (node.IsNull()) return items;
  if (node.IsMap()) return Expected(absl::StrCat("a list of ", what, ", found a mapping"));
  if (node.IsScalar()) {
    for (absl::string_view part : absl::StrSplit(node.Scalar(), ',')) {
      part = absl::StripAsciiWhitespace(part);
      if (!part.empty()) items.emplace_back(part);
    }
    return items;
  }
  for (const YAML::Node& item : node) {
    if (!item.IsScalar()) {
      return Expected(absl::StrCat("a list of ", what, ", found an item that is not a scalar"));
    }
    std::string text(absl::StripAsciiWhitespace(item.Scalar()));
    if (!text.empty()) items.push_back(std::move(text));
  }
  return items;
}

bool StartsWithPath(absl::string_view path, absl::string_view prefix) {
  return path == prefix || absl::StartsWith(path, absl::StrCat(prefix, "."));
}

}  // namespace

void ConfigSchema::OwnSection(const std::string& section) { owned_.push_back(section); }

void ConfigSchema::Add(Key key) { keys_.push_back(std::move(key)); }

void ConfigSchema::Int(const std::string& path, int64_t* out, const std::string& doc, int64_t min,
                       int64_t max) {
  Add({path, "int", absl::StrCat(*out), doc, [out, min, max](const YAML::Node& node) {
         MOERL_ASSIGN_OR_RETURN(*out, ParseInt(node, min, max));
         return absl::OkStatus();
       }});
}

void ConfigSchema::OptionalInt(const std::string& path, std::optional<int64_t>* out,
                               const std::string& doc, int64_t min) {
  Add({path, "int or null", out->has_value() ? absl::StrCat(**out) : "null", doc,
       [out, min](const YAML::Node& node) {
         if (node.IsNull()) {
           out->reset();
           return absl::OkStatus();
         }
         MOERL_ASSIGN_OR_RETURN(*out, ParseInt(node, min, std::numeric_limits<int64_t>::max()));
         return absl::OkStatus();
       }});
}

void ConfigSchema::Double(const std::string& path, double* out, const std::string& doc) {
  Add({path, "float", absl::StrCat(*out), doc, [out](const YAML::Node& node) {
         MOERL_ASSIGN_OR_RETURN(std::string text, ScalarText(node, "a number"));
         double value = 0;
         if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &value) || !std::isfinite(value)) {
           return Expected("a finite number such as 0.5 or 1e-5");
         }
         *out = value;
         return absl::OkStatus();
       }});
}

void ConfigSchema::OptionalDouble(const std::string& path, std::optional<double>* out,
                                  const std::string& doc) {
  Add({path, "float or null", out->has_value() ? absl::StrCat(**out) : "null", doc,
       [out](const YAML::Node& node) {
         if (node.IsNull()) {
           out->reset();
           return absl::OkStatus();
         }
         MOERL_ASSIGN_OR_RETURN(std::string text, ScalarText(node, "a number or null"));
         double value = 0;
         if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &value) || !std::isfinite(value)) {
           return Expected("a finite number such as 0.5, or null");
         }
         *out = value;
         return absl::OkStatus();
       }});
}

void ConfigSchema::Bool(const std::string& path, bool* out, const std::string& doc) {
  Add({path, "bool", *out ? "true" : "false", doc, [out](const YAML::Node& node) {
         MOERL_ASSIGN_OR_RETURN(std::string text, ScalarText(node, "true or false"));
         if (text == "true" || text == "True" || text == "TRUE") {
           *out = true;
         } else if (text == "false" || text == "False" || text == "FALSE") {
           *out = false;
         } else {
           return Expected("true or false");
         }
         return absl::OkStatus();
       }});
}

void ConfigSchema::String(const std::string& path, std::string* out, const std::string& doc) {
  Add({path, "string", absl::StrCat("'", *out, "'"), doc, [out](const YAML::Node& node) {
         MOERL_ASSIGN_OR_RETURN(*out, ScalarText(node, "a string"));
         return absl::OkStatus();
       }});
}

void ConfigSchema::StringList(const std::string& path, std::vector<std::string>* out,
                              const std::string& doc) {
  Add({path, "list of strings", absl::StrCat("[", absl::StrJoin(*out, ", "), "]"), doc,
       [out](const YAML::Node& node) {
         MOERL_ASSIGN_OR_RETURN(*out, ListItems(node, "strings"));
         return absl::OkStatus();
       }});
}

void ConfigSchema::IntList(const std::string& path, std::vector<int64_t>* out,
                           const std::string& doc, int64_t min, int64_t max) {
  Add({path, "list of ints", absl::StrCat("[", absl::StrJoin(*out, ", "), "]"), doc,
       [out, min, max](const YAML::Node& node) {
         MOERL_ASSIGN_OR_RETURN(std::vector<std::string> items, ListItems(node, "integers"));
         std::vector<int64_t> values;
         for (const std::string& item : items) {
           int64_t value = 0;
           if (!absl::SimpleAtoi(item, &value) || value < min || value > max) {
             return Expected(absl::StrCat("integers in [", min, ", ", max, "], found '", item,
                                          "'"));
           }
           values.push_back(value);
         }
         *out = std::move(values);
         return absl::OkStatus();
       }});
}

void ConfigSchema::Choice(const std::string& path, std::string* out,
                          std::vector<std::string> choices, const std::string& doc) {
  const std::string type = absl::StrCat("one of {", absl::StrJoin(choices, ", "), "}");
  Add({path, type, absl::StrCat("'", *out, "'"), doc,
       [out, choices, type](const YAML::Node& node) {
         std::string text;
         if (node.IsNull()) {
           text = "";
         } else {
           MOERL_ASSIGN_OR_RETURN(text, ScalarText(node, type));
         }
         for (const std::string& c : choices) {
           if (c == text) {
             *out = text;
             return absl::OkStatus();
           }
         }
         const std::string closest = ClosestMatch(text, choices);
         return Expected(absl::StrCat(
             type, closest.empty() ? "" : absl::StrCat(" (did you mean '", closest, "'?)")));
       }});
}

std::vector<std::string> ConfigSchema::DeclaredPaths() const {
  std::vector<std::string> out;
  for (const Key& k : keys_) out.push_back(k.path);
  return out;
}

std::string ConfigSchema::Describe() const {
  std::string out;
  for (const Key& k : keys_) {
    absl::StrAppend(&out, k.path, "  ", k.type, "  default ", k.default_text, "  -- ", k.doc, "\n");
  }
  return out;
}

absl::Status ConfigSchema::CheckTopLevel(const ConfigTree& tree) const {
  std::vector<std::string> known = KnownTopLevelKeys();
  for (const Key& k : keys_) known.push_back(k.path.substr(0, k.path.find('.')));
  const std::set<std::string> known_set(known.begin(), known.end());
  const YAML::Node& root = tree.root();
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (known_set.count(key)) continue;
    const std::string closest = ClosestMatch(key, known);
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown top-level key '", key, "' (value '", ShortValue(it->second), "', ",
        tree.Origin(key), ")",
        closest.empty() ? "; see docs/config.md for the keys"
                        : absl::StrCat("; did you mean '", closest, "'?")));
  }
  return absl::OkStatus();
}

absl::Status ConfigSchema::CheckOwnedSections(const ConfigTree& tree) const {
  for (const std::string& section : owned_) {
    std::vector<std::string> candidates;
    for (const Key& k : keys_) {
      if (StartsWithPath(k.path, section)) candidates.push_back(k.path);
    }
    for (const std::string& leaf : tree.LeafPaths()) {
      if (!StartsWithPath(leaf, section) || leaf == section) continue;
      bool declared = false;
      for (const Key& k : keys_) {
        // A declared key, or a mapping above one (an empty `section: {}`).
        if (k.path == leaf || absl::StartsWith(k.path, leaf + ".")) declared = true;
      }
      if (declared) continue;
      const std::string closest = ClosestMatch(leaf, candidates);
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown key '", leaf, "' (value '", ShortValue(tree.Find(leaf)), "', ",
          tree.Origin(leaf), ")",
          closest.empty()
              ? absl::StrCat("; valid keys under '", section, "': ", absl::StrJoin(candidates, ", "))
              : absl::StrCat("; did you mean '", closest, "'?")));
    }
  }
  return absl::OkStatus();
}

absl::Status ConfigSchema::ReadKey(const ConfigTree& tree, const Key& key) const {
  // Every mapping on the way down must be a mapping (or null: absent).
  std::string prefix;
  for (absl::string_view part : absl::StrSplit(key.path, '.')) {
    prefix = config_internal::JoinPath(prefix, std::string(part));
    if (prefix == key.path) break;
    const YAML::Node node = tree.Find(prefix);
    if (!node.IsDefined() || node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key '", prefix, "' must be a mapping (it holds '", key.path, "'), found '",
          ShortValue(node), "' (", tree.Origin(prefix), ")"));
    }
  }
  const YAML::Node node = tree.Find(key.path);
  if (!node.IsDefined()) return absl::OkStatus();
  absl::Status status = key.read(node);
  if (status.ok()) return status;
  return absl::InvalidArgumentError(absl::StrCat("key '", key.path, "' = '", ShortValue(node),
                                                 "' (", tree.Origin(key.path),
                                                 "): ", status.message()));
}

absl::Status ConfigSchema::Read(const ConfigTree& tree) const {
  MOERL_RETURN_IF_ERROR(CheckTopLevel(tree));
  for (const Key& key : keys_) MOERL_RETURN_IF_ERROR(ReadKey(tree, key));
  return CheckOwnedSections(tree);
}

}  // namespace moerl
