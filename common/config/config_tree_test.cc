#include "common/config/config_tree.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/config/cli.h"
#include "common/config/writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

ConfigTree Load(const std::string& text) {
  absl::StatusOr<ConfigTree> tree = ConfigTree::FromYamlText(text, "test.yaml");
  EXPECT_TRUE(tree.ok()) << tree.status();
  return tree.ok() ? *std::move(tree) : ConfigTree();
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir ? dir : "/tmp";
}

constexpr char kYaml[] =
    "experiment_name: gsm8k-grpo\n"
    "trial_name: trial0\n"
    "cluster:\n"
    "  n_nodes: 1\n"
    "  n_gpus_per_node: 8\n"
    "gconfig:\n"
    "  n_samples: 4\n"
    "actor:\n"
    "  path: /models/qwen3\n"
    "  group_size: ${gconfig.n_samples}\n"
    "tokenizer_path: ${actor.path}\n";

TEST(ConfigTree, RecordsTheLineAndColumnOfEveryValue) {
  const ConfigTree tree = Load(kYaml);
  EXPECT_EQ(tree.Find("cluster.n_gpus_per_node").Scalar(), "8");
  EXPECT_EQ(tree.Origin("cluster.n_gpus_per_node"), "test.yaml:5:20");
  EXPECT_EQ(tree.Origin("cluster.missing"), "test.yaml:3:1");
  EXPECT_FALSE(tree.Find("cluster.missing").IsDefined());
  EXPECT_FALSE(tree.Find("experiment_name.deeper").IsDefined());
}

TEST(ConfigTree, EmptyTextIsAnEmptyMapping) {
  const ConfigTree tree = Load("");
  EXPECT_TRUE(tree.root().IsMap());
  EXPECT_TRUE(tree.LeafPaths().empty());
}

TEST(ConfigTree, MalformedYamlGetsFileLineAndColumn) {
  absl::StatusOr<ConfigTree> tree = ConfigTree::FromYamlText("a: 1\nb: [1, 2\n", "bad.yaml");
  ASSERT_FALSE(tree.ok());
  EXPECT_THAT(Message(tree.status()), HasSubstr("bad.yaml:"));
  EXPECT_THAT(Message(tree.status()), HasSubstr("not valid YAML"));
  tree = ConfigTree::FromYamlText("a: 1\n  b: 2\n", "bad.yaml");
  ASSERT_FALSE(tree.ok());
  EXPECT_THAT(Message(tree.status()), HasSubstr("bad.yaml:2:"));
}

TEST(ConfigTree, TopLevelMustBeAMapping) {
  absl::StatusOr<ConfigTree> tree = ConfigTree::FromYamlText("- a\n- b\n", "list.yaml");
  ASSERT_FALSE(tree.ok());
  EXPECT_THAT(Message(tree.status()), HasSubstr("list.yaml: the top level must be a mapping"));
  EXPECT_FALSE(ConfigTree::FromYamlText("just a string", "s.yaml").ok());
}

TEST(ConfigTree, DuplicateKeysNameBothLines) {
  absl::StatusOr<ConfigTree> tree =
      ConfigTree::FromYamlText("cluster:\n  n_nodes: 1\n  n_nodes: 2\n", "dup.yaml");
  ASSERT_FALSE(tree.ok());
  EXPECT_THAT(Message(tree.status()),
              HasSubstr("dup.yaml:3:3: duplicate key 'cluster.n_nodes' (first set at line 2)"));
}

TEST(ConfigTree, NonStringKeysAreRejected) {
  absl::StatusOr<ConfigTree> tree = ConfigTree::FromYamlText("? [a, b]\n: 1\n", "key.yaml");
  ASSERT_FALSE(tree.ok());
  EXPECT_THAT(Message(tree.status()), HasSubstr("keys must be plain strings"));
}

TEST(ConfigTree, AliasBombsAndDeepNestingAreRejected) {
  std::string bomb = "a0: &a0 {x: 1, y: 1}\n";
  for (int i = 1; i < 30; ++i) {
    bomb += absl::StrCat("a", i, ": &a", i, " {x: *a", i - 1, ", y: *a", i - 1, "}\n");
  }
  absl::StatusOr<ConfigTree> tree = ConfigTree::FromYamlText(bomb, "bomb.yaml");
  ASSERT_FALSE(tree.ok());
  EXPECT_THAT(Message(tree.status()), HasSubstr("too large or too deep after expanding YAML aliases"));
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += std::string(2 * i, ' ') + "k:\n";
  EXPECT_THAT(Message(ConfigTree::FromYamlText(deep, "deep.yaml").status()),
              HasSubstr("too large or too deep"));
  ConfigTree small = Load("a: 1\n");
  EXPECT_TRUE(small.ApplyOverride("++b=[&x [1,2], *x, *x]").ok());
}

TEST(ConfigInterpolation, CopiesAndChainsAreBounded) {
  std::string yaml = "l0: {a: 1, b: 2, c: 3, d: 4}\n";
  for (int i = 1; i < 20; ++i) {
    yaml += absl::StrCat("l", i, ":\n  x: ${l", i - 1, "}\n  y: ${l", i - 1, "}\n");
  }
  ConfigTree tree = Load(yaml);
  EXPECT_THAT(Message(tree.ResolveInterpolations()), HasSubstr("interpolation copies more than"));
  std::string chain;
  for (int i = 0; i < 200; ++i) chain += absl::StrCat("k", i, ": ${k", i + 1, "}\n");
  chain += "k200: 1\n";
  ConfigTree long_chain = Load(chain);
  EXPECT_THAT(Message(long_chain.ResolveInterpolations()), HasSubstr("interpolation chain deeper than 64"));
}

TEST(ConfigTree, MissingFileIsNotFound) {
  absl::StatusOr<ConfigTree> tree = ConfigTree::FromFile("/nonexistent/moerl.yaml");
  ASSERT_FALSE(tree.ok());
  EXPECT_EQ(tree.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(tree.status()), HasSubstr("/nonexistent/moerl.yaml"));
}

TEST(ConfigOverride, PlainFormChangesAnExistingKeyAndRecordsItsOrigin) {
  ConfigTree tree = Load(kYaml);
  ASSERT_TRUE(tree.ApplyOverride("cluster.n_nodes=4").ok());
  EXPECT_EQ(tree.Find("cluster.n_nodes").Scalar(), "4");
  EXPECT_EQ(tree.Origin("cluster.n_nodes"), "override 'cluster.n_nodes=4'");
}

TEST(ConfigOverride, PlainFormOnAMissingKeySuggestsPlusAndTheClosestKey) {
  ConfigTree tree = Load(kYaml);
  const absl::Status s = tree.ApplyOverride("cluster.n_gpu_per_node=4");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("key 'cluster.n_gpu_per_node' is not in the config"));
  EXPECT_THAT(Message(s), HasSubstr("did you mean 'cluster.n_gpus_per_node'?"));
  EXPECT_THAT(Message(s), HasSubstr("write '+cluster.n_gpu_per_node=4'"));
}

TEST(ConfigOverride, PlainFormAddsAMissingKeyOfAKnownSectionWhenAsked) {
  ConfigTree tree = Load(kYaml);
  ASSERT_TRUE(tree.ApplyOverride("scheduler.type=ray", /*plain_adds_known_keys=*/true).ok());
  EXPECT_EQ(tree.Find("scheduler.type").Scalar(), "ray");
  ASSERT_TRUE(tree.ApplyOverride("actor.megatron.use_deterministic_algorithms=True",
                                 /*plain_adds_known_keys=*/true).ok());
  EXPECT_EQ(tree.Find("actor.megatron.use_deterministic_algorithms").Scalar(), "True");
  const absl::Status s = tree.ApplyOverride("shceduler.type=ray", /*plain_adds_known_keys=*/true);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("key 'shceduler.type' is not in the config"));
  // One or two edits from a key the YAML has: a typo, not a new key.
  EXPECT_FALSE(tree.ApplyOverride("cluster.n_gpu_per_node=4", true).ok());
}

TEST(ConfigOverride, PlusFormAddsAMissingKeyAndRefusesAnExistingOne) {
  ConfigTree tree = Load(kYaml);
  ASSERT_TRUE(tree.ApplyOverride("+actor.megatron.use_deterministic_algorithms=true").ok());
  EXPECT_EQ(tree.Find("actor.megatron.use_deterministic_algorithms").Scalar(), "true");
  const absl::Status s = tree.ApplyOverride("+cluster.n_nodes=2");
  EXPECT_THAT(Message(s), HasSubstr("key 'cluster.n_nodes' is already set to '1' (test.yaml:4:12)"));
  EXPECT_THAT(Message(s), HasSubstr("write 'cluster.n_nodes=2'"));
}

TEST(ConfigOverride, DoublePlusAddsOrChanges) {
  ConfigTree tree = Load(kYaml);
  ASSERT_TRUE(tree.ApplyOverride("++cluster.n_nodes=3").ok());
  ASSERT_TRUE(tree.ApplyOverride("++rollout.max_head_offpolicyness=2").ok());
  EXPECT_EQ(tree.Find("cluster.n_nodes").Scalar(), "3");
  EXPECT_EQ(tree.Find("rollout.max_head_offpolicyness").Scalar(), "2");
}

TEST(ConfigOverride, TildeDeletesAndComplainsAboutMissingKeys) {
  ConfigTree tree = Load(kYaml);
  ASSERT_TRUE(tree.ApplyOverride("~cluster.n_nodes").ok());
  EXPECT_FALSE(tree.Find("cluster.n_nodes").IsDefined());
  EXPECT_TRUE(tree.Find("cluster.n_gpus_per_node").IsDefined());
  EXPECT_THAT(Message(tree.ApplyOverride("~cluster.n_nodes")), HasSubstr("nothing to delete"));
}

TEST(ConfigOverride, ValuesAreYamlFlowScalars) {
  ConfigTree tree = Load(kYaml);
  ASSERT_TRUE(tree.ApplyOverride("++a.null_value=null").ok());
  ASSERT_TRUE(tree.ApplyOverride("++a.list=[1,2,3]").ok());
  ASSERT_TRUE(tree.ApplyOverride("++a.empty=").ok());
  ASSERT_TRUE(
      tree.ApplyOverride("++allocation_mode=\"sglang:d4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)\"").ok());
  ASSERT_TRUE(tree.ApplyOverride("++a.unquoted=megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)").ok());
  EXPECT_TRUE(tree.Find("a.null_value").IsNull());
  EXPECT_EQ(tree.Find("a.list").size(), 3u);
  EXPECT_EQ(tree.Find("a.empty").Scalar(), "");
  EXPECT_EQ(tree.Find("allocation_mode").Scalar(), "sglang:d4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)");
  EXPECT_EQ(tree.Find("a.unquoted").Scalar(), "megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)");
}

TEST(ConfigOverride, MalformedOverridesAreRejected) {
  ConfigTree tree = Load(kYaml);
  EXPECT_THAT(Message(tree.ApplyOverride("cluster.n_nodes")), HasSubstr("has no '='"));
  EXPECT_THAT(Message(tree.ApplyOverride("cluster..n_nodes=1")), HasSubstr("has an empty part"));
  EXPECT_THAT(Message(tree.ApplyOverride("=1")), HasSubstr("has an empty part"));
  EXPECT_THAT(Message(tree.ApplyOverride("cluster/n_nodes=1")), HasSubstr("contains '/'"));
  EXPECT_THAT(Message(tree.ApplyOverride("cluster.n_nodes=[1,2")), HasSubstr("not valid YAML"));
  EXPECT_THAT(Message(tree.ApplyOverride("+experiment_name.sub=1")),
              HasSubstr("'experiment_name' holds the value 'gsm8k-grpo' (test.yaml:1:18), not a "
                        "mapping"));
}

TEST(ConfigInterpolation, WholeReferencesCopyTheNodeAndSplicesMakeStrings) {
  ConfigTree tree = Load(std::string(kYaml) +
                         "rollout:\n  tag: run-${gconfig.n_samples}-${experiment_name}\n"
                         "  copy: ${cluster}\n  literal: \\${not.a.ref}\n");
  ASSERT_TRUE(tree.ResolveInterpolations().ok());
  EXPECT_EQ(tree.Find("actor.group_size").Scalar(), "4");
  EXPECT_EQ(tree.Find("tokenizer_path").Scalar(), "/models/qwen3");
  EXPECT_EQ(tree.Find("rollout.tag").Scalar(), "run-4-gsm8k-grpo");
  EXPECT_EQ(tree.Find("rollout.copy.n_gpus_per_node").Scalar(), "8");
  EXPECT_EQ(tree.Find("rollout.literal").Scalar(), "${not.a.ref}");
}

TEST(ConfigInterpolation, ChainsResolveInAnyOrderAndSeeOverrides) {
  ConfigTree tree = Load("a: ${b}\nb: ${c}\nc: 7\n");
  ASSERT_TRUE(tree.ApplyOverride("c=9").ok());
  ASSERT_TRUE(tree.ResolveInterpolations().ok());
  EXPECT_EQ(tree.Find("a").Scalar(), "9");
}

TEST(ConfigInterpolation, BadReferencesAreErrorsNamingKeyAndLine) {
  struct Case {
    const char* yaml;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"x: 1\na: ${actor.pth}\nactor:\n  path: p\n",
            "key 'a' (test.yaml:2:4): '${actor.pth}' refers to a key that is not in the config "
            "(did you mean 'actor.path'?)"},
           {"a: ${b}\nb: ${a}\n", "interpolation cycle: a -> b -> a"},
           {"a:\n  b: ${a}\n", "interpolation cycle: a.b -> a.b"},
           {"a: ${b\n", "'${' is not closed by '}'"},
           {"a: ${oc.env:HOME}\n", "resolvers such as '${oc.env:HOME}' are not supported"},
           {"a: ${.b}\nb: 1\n", "relative references"},
           {"a: ${x${y}}\n", "nested interpolation"},
           {"a: x-${m}\nm:\n  k: 1\n", "'${m}' is a mapping and cannot be spliced into a string"},
       }) {
    ConfigTree tree = Load(c.yaml);
    const absl::Status s = tree.ResolveInterpolations();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_THAT(Message(s), HasSubstr(c.message)) << c.yaml;
  }
}

TEST(ResolvedConfigWriter, WritesConfigYamlThatLoadsBackToTheSameValues) {
  ConfigTree tree = Load(kYaml);
  ASSERT_TRUE(tree.ResolveInterpolations().ok());
  const std::string dir = TempDir() + "/writer/gsm8k-grpo/trial0";
  ASSERT_TRUE(WriteResolvedConfig(tree, dir).ok());
  absl::StatusOr<ConfigTree> back = ConfigTree::FromFile(dir + "/config.yaml");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->LeafPaths(), tree.LeafPaths());
  for (const std::string& path : tree.LeafPaths()) {
    EXPECT_EQ(ShortValue(back->Find(path)), ShortValue(tree.Find(path))) << path;
  }
}

TEST(ResolvedConfigWriter, UnwritableDirectoryIsAnError) {
  const std::string file = TempDir() + "/not_a_dir";
  std::ofstream(file) << "x";
  const absl::Status s = WriteResolvedConfig(Load(kYaml), file + "/run");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(Message(s), HasSubstr("not_a_dir/run"));
}

TEST(CommandLine, SplitsConfigFlagsAndOverrides) {
  absl::StatusOr<CommandLine> cli = ParseCommandLine(
      {"--config", "x.yaml", "a.b=1", "+c=2", "~d", "--json"}, {"--json"});
  ASSERT_TRUE(cli.ok()) << cli.status();
  EXPECT_EQ(cli->config_path, "x.yaml");
  EXPECT_EQ(cli->overrides, (std::vector<std::string>{"a.b=1", "+c=2", "~d"}));
  EXPECT_EQ(cli->flags.count("--json"), 1u);
  EXPECT_EQ(ParseCommandLine({"--config=y.yaml"}, {})->config_path, "y.yaml");
}

TEST(CommandLine, TakeFlagRemovesEveryCopyAndSaysWhetherThereWasOne) {
  std::vector<std::string> args = {"--check_config", "--config", "x.yaml", "a=1", "--check_config"};
  EXPECT_TRUE(TakeFlag("--check_config", &args));
  EXPECT_EQ(args, (std::vector<std::string>{"--config", "x.yaml", "a=1"}));
  EXPECT_FALSE(TakeFlag("--check_config", &args));
  EXPECT_EQ(args.size(), 3u);
}

TEST(CommandLine, RejectsMissingConfigUnknownFlagsAndStrayWords) {
  EXPECT_THAT(Message(ParseCommandLine({"a=1"}, {}).status()), HasSubstr("missing --config"));
  EXPECT_THAT(Message(ParseCommandLine({"--config"}, {}).status()), HasSubstr("needs a file name"));
  EXPECT_THAT(Message(ParseCommandLine({"--config", "x", "--jsn"}, {"--json"}).status()),
              HasSubstr("unknown flag '--jsn'"));
  // What bash leaves of an unquoted `a=(x|y)`-style word split at a space.
  EXPECT_THAT(Message(ParseCommandLine({"--config", "x", "ffn:d1p4t1e4)"}, {}).status()),
              HasSubstr("unexpected argument 'ffn:d1p4t1e4)'"));
}

TEST(CommandLine, LoadConfigAppliesOverridesThenInterpolation) {
  const std::string path = TempDir() + "/load.yaml";
  std::ofstream(path) << kYaml;
  absl::StatusOr<CommandLine> cli =
      ParseCommandLine({"--config", path, "gconfig.n_samples=8"}, {});
  ASSERT_TRUE(cli.ok());
  absl::StatusOr<ConfigTree> tree = LoadConfig(*cli);
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->Find("actor.group_size").Scalar(), "8");
  cli->overrides = {"gconfig.n_sample=8"};
  EXPECT_THAT(Message(LoadConfig(*cli).status()), HasSubstr("did you mean 'gconfig.n_samples'"));
}

}  // namespace
}  // namespace moerl
