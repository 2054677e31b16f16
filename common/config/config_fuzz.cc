// libFuzzer entry point for the config loader: the input is split at the
// first NUL into YAML text and newline-separated overrides; loading, the
// overrides, interpolation, a schema read and the writer's emitter must
// never crash or hang, and every error must be a Status.
//
//   bazel build --config=fuzz //common/config:config_fuzz
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/config/config_tree.h"
#include "common/config/schema.h"

namespace {

struct Fields {
  int64_t n_nodes = 1;
  bool flag = false;
  std::string name;
  std::string choice;
  double ratio = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string yaml = input.substr(0, nul);
  const std::string overrides = nul == std::string::npos ? "" : input.substr(nul + 1);
  absl::StatusOr<moerl::ConfigTree> tree = moerl::ConfigTree::FromYamlText(yaml, "fuzz.yaml");
  if (!tree.ok()) return 0;
  for (absl::string_view o : absl::StrSplit(overrides, '\n', absl::SkipEmpty())) {
    (void)tree->ApplyOverride(o);
  }
  (void)tree->ResolveInterpolations();
  Fields f;
  moerl::ConfigSchema schema;
  schema.OwnSection("cluster");
  schema.Int("cluster.n_nodes", &f.n_nodes, "", 1, 100);
  schema.Bool("cluster.flag", &f.flag, "");
  schema.String("experiment_name", &f.name, "");
  schema.Choice("scheduler.type", &f.choice, {"", "local"}, "");
  schema.Double("a.b", &f.ratio, "");
  (void)schema.Read(*tree);
  for (const std::string& leaf : tree->LeafPaths()) (void)tree->Origin(leaf);
  YAML::Emitter out;
  out << tree->root();
  return 0;
}
