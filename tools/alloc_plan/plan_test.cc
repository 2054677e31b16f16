// End-to-end planner behaviour through RunAllocPlan: table, JSON, and every
// kind of bad input it must name.
#include "tools/alloc_plan/plan.h"

#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moerl {
namespace {

using ::testing::HasSubstr;

constexpr char kConfig[] = "tools/alloc_plan/testdata/qwen3-30b-32gpu.yaml";

struct Result {
  absl::Status status;
  std::string out;
};

Result RunPlanner(std::vector<std::string> extra) {
  std::vector<std::string> args = {"--config", kConfig};
  args.insert(args.end(), extra.begin(), extra.end());
  std::ostringstream out;
  Result r;
  r.status = RunAllocPlan(args, out);
  r.out = out.str();
  return r;
}

TEST(AllocPlan, TablePrintsGpusModelMemoryCommunicationAndRankGroups) {
  const Result r = RunPlanner({});
  ASSERT_TRUE(r.status.ok()) << r.status << "\n" << r.out;
  EXPECT_THAT(r.out, HasSubstr("allocation_mode  sglang:d4t4+megatron:p4t2c2e4"));
  EXPECT_THAT(r.out, HasSubstr("32 needed (4 nodes of 8); cluster has 32: fits"));
  EXPECT_THAT(r.out, HasSubstr("30.53 B parameters, 3.35 B active per token"));
  EXPECT_THAT(r.out, HasSubstr("4 servers x 4 GPUs (tp=4 pp=1)"));
  EXPECT_THAT(r.out, HasSubstr("layers per stage     12 12 12 12"));
  EXPECT_THAT(r.out, HasSubstr("experts per rank     32 (ep=4, etp=1)"));
  EXPECT_THAT(r.out, HasSubstr("ep         [0,1,2,3] [4,5,6,7] [8,9,10,11] [12,13,14,15]"));
  EXPECT_THAT(r.out, HasSubstr("33.42"));  // static GiB of stage 0
  EXPECT_THAT(r.out, HasSubstr("problems         none"));
}

TEST(AllocPlan, JsonHasTheSameNumbers) {
  const Result r = RunPlanner({"--json"});
  ASSERT_TRUE(r.status.ok()) << r.status;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["gpus"]["needed"], 32);
  EXPECT_EQ(j["gpus"]["fits"], true);
  EXPECT_EQ(j["model"]["parameters"], 30532122624);
  EXPECT_EQ(j["model"]["active_parameters"], 3353032704);
  const nlohmann::json& t = j["training"][0];
  EXPECT_EQ(t["dims"]["world"], 16);
  EXPECT_EQ(t["experts_per_rank"], 32);
  EXPECT_NEAR(t["stages"][0]["static_gib"].get<double>(), 33.4, 0.05);
  EXPECT_EQ(t["rank_groups"]["pp"], "[0,4,8,12] [1,5,9,13] [2,6,10,14] [3,7,11,15]");
  EXPECT_GT(t["comm_gib_per_step"]["ep"].get<double>(), 0);
  EXPECT_TRUE(j["problems"].empty());
}

TEST(AllocPlan, OverridesWithParenthesesAndPerEngineBackendsWork) {
  Result r = RunPlanner({"allocation_mode=\"sglang:d2+megatron:(attn:d2p2t2c2|ffn:d2p2t1e4)\""});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(r.out, HasSubstr("sglang:d2+megatron:d2p2t2c2e4"));
  r = RunPlanner({"allocation_mode=", "+rollout.backend=sglang:d4t2", "+actor.backend=megatron:d8e8"});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(r.out, HasSubstr("allocation_mode  sglang:d4t2+megatron:d8e8"));
}

TEST(AllocPlan, ProblemsArePrintedAndFailThePlan) {
  Result r = RunPlanner({"cluster.n_nodes=2"});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.out, HasSubstr("DOES NOT FIT"));
  EXPECT_THAT(r.out, HasSubstr("needs 32 GPUs (4 nodes), the cluster has 2 x 8 = 16"));

  r = RunPlanner({"allocation_mode=sglang:d4+megatron:d2p5t3e3", "train_dataset.batch_size=3",
           "cluster.n_nodes=8"});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.out, HasSubstr("megatron:d2p5t3e3: layers (48) is not divisible by pp (5)"));
  EXPECT_THAT(r.out, HasSubstr("megatron:d2p5t3e3: experts (128) is not divisible by ep (3)"));
  EXPECT_THAT(r.out, HasSubstr("attention heads (32) is not divisible by tp (3)"));
  EXPECT_THAT(r.out, HasSubstr("train_dataset.batch_size (3) is not divisible by dp (2)"));

  r = RunPlanner({"planner.gpu_memory_gib=24"});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.out, HasSubstr("GiB per GPU, more than planner.gpu_memory_gib = 24"));
}

TEST(AllocPlan, BadInputNamesWhatAndWhere) {
  struct Case {
    std::vector<std::string> args;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {{"allocation_mode=sglang:d4+fsdp:d4p2"}, "key 'allocation_mode': invalid allocation_mode: FSDP"},
           {{"actor.path=/nonexistent"}, "cannot read model config '/nonexistent'"},
           {{"actor.path="}, "key 'actor.path' is empty"},
           {{"+planner.gpu_mem=80"}, "unknown key 'planner.gpu_mem' (value '80', override "
                                     "'+planner.gpu_mem=80'); did you mean 'planner.gpu_memory_gib'?"},
           {{"cluster.n_nodes=four"}, "key 'cluster.n_nodes' = 'four'"},
           {{"cluster.n_node=4"}, "did you mean 'cluster.n_nodes'?"},
           {{"allocation_mode=", "+actor.backend=sglang:d4+fsdp:d4"},
            "key 'actor.backend': invalid allocation_mode: one allocation expected here"},
           {{"allocation_mode="}, "no allocation: set allocation_mode"},
           {{"planner.gpu_memory_gib=-1"}, "'planner.gpu_memory_gib' must be > 0"},
       }) {
    const Result r = RunPlanner(c.args);
    EXPECT_FALSE(r.status.ok()) << ::testing::PrintToString(c.args);
    EXPECT_THAT(std::string(r.status.message()), HasSubstr(c.message))
        << ::testing::PrintToString(c.args);
  }
  std::ostringstream out;
  EXPECT_THAT(std::string(RunAllocPlan({"--config", "/nonexistent.yaml"}, out).message()),
              HasSubstr("cannot read config file '/nonexistent.yaml'"));
  EXPECT_THAT(std::string(RunAllocPlan({"cluster.n_nodes=1"}, out).message()),
              HasSubstr("missing --config"));
}

TEST(AllocPlan, HelpListsTheKeysItReads) {
  std::ostringstream out;
  ASSERT_TRUE(RunAllocPlan({"--help"}, out).ok());
  EXPECT_THAT(out.str(), HasSubstr("planner.micro_batch_tokens"));
  EXPECT_THAT(out.str(), HasSubstr("actor.path  string"));
}

}  // namespace
}  // namespace moerl
