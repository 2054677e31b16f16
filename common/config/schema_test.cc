#include "common/config/schema.h"

#include <optional>
#include <string>

#include "common/config/sections.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

// A section as a binary would write it: its own struct, its own keys.
struct RolloutOptions {
  int64_t max_head_offpolicyness = 0;
  std::optional<int64_t> queue_size;
  double request_timeout = 3600;
  bool dump_to_file = false;

  void Declare(ConfigSchema* schema) {
    schema->OwnSection("rollout");
    schema->Int("rollout.max_head_offpolicyness", &max_head_offpolicyness, "staleness bound", 0);
    schema->OptionalInt("rollout.queue_size", &queue_size, "queue bound", 1);
    schema->Double("rollout.request_timeout", &request_timeout, "seconds");
    schema->Bool("rollout.dump_to_file", &dump_to_file, "dump jsonl");
  }
};

ConfigTree Load(const std::string& text) {
  absl::StatusOr<ConfigTree> tree = ConfigTree::FromYamlText(text, "run.yaml");
  EXPECT_TRUE(tree.ok()) << tree.status();
  return tree.ok() ? *std::move(tree) : ConfigTree();
}

std::string ReadError(const std::string& yaml) {
  ClusterConfig cluster;
  RolloutOptions rollout;
  SchedulerConfig scheduler;
  ConfigSchema schema;
  cluster.Declare(&schema);
  rollout.Declare(&schema);
  scheduler.Declare(&schema);
  const absl::Status s = schema.Read(Load(yaml));
  EXPECT_FALSE(s.ok()) << yaml;
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

TEST(ConfigSchema, FillsEachSectionStructAndKeepsDefaultsForAbsentKeys) {
  ClusterConfig cluster;
  RolloutOptions rollout;
  ConfigSchema schema;
  cluster.Declare(&schema);
  rollout.Declare(&schema);
  ConfigTree tree = Load(
      "cluster:\n  n_nodes: 4\n  fileroot: /data/runs\n"
      "rollout:\n  max_head_offpolicyness: 2\n  queue_size: null\n  request_timeout: 1.5e2\n"
      "  dump_to_file: true\n"
      "actor:\n  optimizer:\n    lr: 1.7e-5\n");
  ASSERT_TRUE(tree.ApplyOverride("cluster.n_nodes=2").ok());
  ASSERT_TRUE(schema.Read(tree).ok()) << schema.Read(tree);
  EXPECT_EQ(cluster.n_nodes, 2);
  EXPECT_EQ(cluster.n_gpus_per_node, 8);  // default
  EXPECT_EQ(cluster.fileroot, "/data/runs");
  EXPECT_EQ(cluster.TotalGpus(), 16);
  EXPECT_EQ(rollout.max_head_offpolicyness, 2);
  EXPECT_FALSE(rollout.queue_size.has_value());
  EXPECT_DOUBLE_EQ(rollout.request_timeout, 150.0);
  EXPECT_TRUE(rollout.dump_to_file);
}

TEST(ConfigSchema, UnknownKeyInAnOwnedSectionNamesPathValueLineAndClosestKey) {
  EXPECT_EQ(ReadError("cluster:\n  n_gpu_per_node: 8\n"),
            "unknown key 'cluster.n_gpu_per_node' (value '8', run.yaml:2:19); did you mean "
            "'cluster.n_gpus_per_node'?");
  EXPECT_THAT(ReadError("cluster:\n  zzz: 1\n"),
              HasSubstr("valid keys under 'cluster': cluster.n_nodes, cluster.n_gpus_per_node, "
                        "cluster.fileroot"));
}

TEST(ConfigSchema, UnknownTopLevelKeySuggestsTheSection) {
  EXPECT_EQ(ReadError("clustr:\n  n_nodes: 1\n"),
            "unknown top-level key 'clustr' (value '{n_nodes: 1}', run.yaml:1:1); did you mean "
            "'cluster'?");
}

TEST(ConfigSchema, SectionsOwnedByOtherBinariesAreNotChecked) {
  ClusterConfig cluster;
  ConfigSchema schema;
  cluster.Declare(&schema);
  EXPECT_TRUE(schema.Read(Load("actor:\n  anything: 1\ngconfig:\n  n_samples: 4\n")).ok());
}

TEST(ConfigSchema, WrongTypesNameTheKeyTheValueAndWhatWasExpected) {
  EXPECT_EQ(ReadError("cluster:\n  n_nodes: two\n"),
            "key 'cluster.n_nodes' = 'two' (run.yaml:2:12): expected an integer such as 4");
  EXPECT_THAT(ReadError("cluster:\n  n_nodes: 1.5\n"), HasSubstr("expected an integer"));
  EXPECT_THAT(ReadError("cluster:\n  n_nodes: 0\n"),
              HasSubstr("key 'cluster.n_nodes' = '0' (run.yaml:2:12): expected an integer in [1, "
                        "65536]"));
  EXPECT_THAT(ReadError("cluster:\n  n_nodes: [1, 2]\n"), HasSubstr("found a sequence"));
  EXPECT_THAT(ReadError("cluster:\n  fileroot: null\n"), HasSubstr("expected a string, found null"));
  EXPECT_THAT(ReadError("cluster:\n  fileroot:\n    a: 1\n"), HasSubstr("found a mapping"));
  EXPECT_THAT(ReadError("rollout:\n  dump_to_file: yes\n"), HasSubstr("expected true or false"));
  EXPECT_THAT(ReadError("rollout:\n  request_timeout: fast\n"), HasSubstr("expected a finite number"));
  EXPECT_THAT(ReadError("rollout:\n  request_timeout: .nan\n"), HasSubstr("expected a finite number"));
  EXPECT_THAT(ReadError("rollout:\n  queue_size: 0\n"), HasSubstr("expected an integer >= 1"));
  EXPECT_THAT(ReadError("scheduler:\n  type: slrum\n"),
              HasSubstr("expected one of {, local, slurm, ray} (did you mean 'slurm'?)"));
}

TEST(ConfigSchema, ScalarWhereASectionBelongsIsAnError) {
  EXPECT_EQ(ReadError("cluster: 5\n"),
            "key 'cluster' must be a mapping (it holds 'cluster.n_nodes'), found '5' (run.yaml:1:10)");
}

TEST(ConfigSchema, ErrorsFromOverridesNameTheOverride) {
  ClusterConfig cluster;
  ConfigSchema schema;
  cluster.Declare(&schema);
  ConfigTree tree = Load("cluster:\n  n_nodes: 1\n");
  ASSERT_TRUE(tree.ApplyOverride("cluster.n_nodes=-3").ok());
  EXPECT_THAT(std::string(schema.Read(tree).message()),
              HasSubstr("key 'cluster.n_nodes' = '-3' (override 'cluster.n_nodes=-3')"));
}

TEST(ConfigSchema, NullSectionMeansDefaults) {
  ClusterConfig cluster;
  SchedulerConfig scheduler;
  ConfigSchema schema;
  cluster.Declare(&schema);
  scheduler.Declare(&schema);
  ASSERT_TRUE(schema.Read(Load("cluster:\nscheduler:\n  type: null\n")).ok());
  EXPECT_EQ(cluster.n_nodes, 1);
  EXPECT_EQ(scheduler.type, "");
}

TEST(ConfigSchema, DescribeListsTypesDefaultsAndDocs) {
  ClusterConfig cluster;
  ConfigSchema schema;
  cluster.Declare(&schema);
  EXPECT_THAT(schema.Describe(), HasSubstr("cluster.n_gpus_per_node  int  default 8  -- GPUs per node"));
}

TEST(ConfigSections, RunConfigRequiresValidNames) {
  RunConfig run;
  ConfigSchema schema;
  run.Declare(&schema);
  ASSERT_TRUE(schema.Read(Load("seed: 3\n")).ok());
  EXPECT_EQ(run.seed, 3);
  EXPECT_THAT(std::string(run.Validate().message()), HasSubstr("'experiment_name' is required"));
  ASSERT_TRUE(schema.Read(Load("experiment_name: gsm8k-grpo\ntrial_name: trial0\n")).ok());
  EXPECT_TRUE(run.Validate().ok());
  ASSERT_TRUE(schema.Read(Load("experiment_name: gsm8k_grpo\ntrial_name: trial0\n")).ok());
  EXPECT_THAT(std::string(run.Validate().message()), HasSubstr("must not contain '_'"));
}

TEST(ConfigSections, AllocationModeErrorsKeepTheCaret) {
  AllocationModeConfig alloc;
  ConfigSchema schema;
  alloc.Declare(&schema);
  ASSERT_TRUE(schema.Read(Load("allocation_mode: sglang:d4+fsdp:d4p2\n")).ok());
  const std::string message(alloc.Validate().message());
  EXPECT_THAT(message, HasSubstr("key 'allocation_mode': invalid allocation_mode: FSDP backend"));
  EXPECT_THAT(message, HasSubstr("\n  sglang:d4+fsdp:d4p2\n                   ^~\n"));
  ASSERT_TRUE(schema.Read(Load("allocation_mode: \"sglang:d4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)\"\n")).ok());
  EXPECT_EQ(alloc.Parse()->TotalGpus(), 20);
}

TEST(ConfigSchema, ListsAcceptSequencesOrCommaStringsAndNameBadItems) {
  std::vector<std::string> addrs;
  std::vector<int64_t> ids = {7};
  ConfigSchema schema;
  schema.StringList("rollout.server_addrs", &addrs, "servers");
  schema.IntList("gconfig.stop_token_ids", &ids, "stop ids", 0);
  ASSERT_TRUE(schema.Read(Load("rollout:\n  server_addrs: [a:1, ' b:2']\n"
                               "gconfig:\n  stop_token_ids: '3, 4'\n"))
                  .ok());
  EXPECT_EQ(addrs, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ(ids, (std::vector<int64_t>{3, 4}));
  ASSERT_TRUE(schema.Read(Load("rollout:\n  server_addrs: 'c:3,d:4,'\n")).ok());
  EXPECT_EQ(addrs, (std::vector<std::string>{"c:3", "d:4"}));
  const absl::Status bad = schema.Read(Load("gconfig:\n  stop_token_ids: [1, -2]\n"));
  EXPECT_THAT(std::string(bad.message()), HasSubstr("gconfig.stop_token_ids"));
  EXPECT_THAT(std::string(bad.message()), HasSubstr("'-2'"));
}

}  // namespace
}  // namespace moerl
