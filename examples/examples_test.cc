// The examples in examples/ load and plan: each YAML goes through the config
// loader (interpolation, overrides), the schemas of the binaries that read it
// today (run names, cluster, scheduler, allocation, the feeder's and the
// scorer's sections; trainer and bridge sections are not owned by anyone yet,
// so only their types are checked where the planner reads them), and the
// allocation planner, which must report no problem. The Megatron example's
// plan must equal the one recorded in docs/examples.md, and the Slurm script
// must be valid bash.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/config/cli.h"
#include "common/config/schema.h"
#include "common/config/sections.h"
#include "dataset/feeder_settings.h"
#include "gtest/gtest.h"
#include "reward/scorer_settings.h"
#include "tools/alloc_plan/plan.h"

namespace moerl {
namespace {

constexpr char kGsm8k[] = "examples/gsm8k_grpo.yaml";
constexpr char kMegatron[] = "examples/qwen3_30b_a3b_megatron.yaml";
// Stand-ins for the EDIT paths: config.json files kept in the repository.
constexpr char kSmallModel[] = "actor.path=trainer/model/configs/tiny-moe.json";
constexpr char kQwen3_30B[] = "actor.path=tools/alloc_plan/testdata/qwen3-30b-a3b";

std::vector<std::string> Args(const std::string& config, std::vector<std::string> overrides) {
  std::vector<std::string> args = {"--config", config};
  args.insert(args.end(), overrides.begin(), overrides.end());
  return args;
}

// Loads the example and reads it with every schema that exists today.
void ExpectLoads(const std::string& config, const std::vector<std::string>& overrides) {
  absl::StatusOr<CommandLine> cli = ParseCommandLine(Args(config, overrides), {});
  ASSERT_TRUE(cli.ok()) << cli.status();
  absl::StatusOr<ConfigTree> tree = LoadConfig(*cli);
  ASSERT_TRUE(tree.ok()) << config << ": " << tree.status();

  RunConfig run;
  ClusterConfig cluster;
  SchedulerConfig scheduler;
  AllocationModeConfig allocation;
  FeederSettings feeder;
  ScorerSettings scorer;
  ConfigSchema schema;
  run.Declare(&schema);
  cluster.Declare(&schema);
  scheduler.Declare(&schema);
  allocation.Declare(&schema);
  ASSERT_TRUE(schema.Read(*tree).ok()) << config << ": " << schema.Read(*tree);
  EXPECT_TRUE(run.Validate().ok()) << run.Validate();
  EXPECT_TRUE(cluster.Validate().ok()) << cluster.Validate();
  EXPECT_TRUE(allocation.Validate().ok()) << allocation.Validate();
  // The feeder and the scorer build their own schemas (each owns its sections).
  ConfigSchema feeder_schema;
  feeder.Declare(&feeder_schema);
  EXPECT_TRUE(feeder_schema.Read(*tree).ok()) << config << ": " << feeder_schema.Read(*tree);
  ConfigSchema scorer_schema;
  scorer.Declare(&scorer_schema);
  EXPECT_TRUE(scorer_schema.Read(*tree).ok()) << config << ": " << scorer_schema.Read(*tree);

  EXPECT_EQ(feeder.path, "third_party/data/gsm8k/train.jsonl");
  EXPECT_EQ(feeder.batch_size, 256);
  EXPECT_EQ(scorer.n_samples, 4);
  EXPECT_EQ(scorer.batch_size, 256);
  EXPECT_FALSE(scorer.lenient_units);
  EXPECT_EQ(run.trial_name, "trial0");
}

// Runs the planner as the binary does; any problem is a failure.
std::string Plan(const std::string& config, const std::vector<std::string>& overrides) {
  std::ostringstream out;
  const absl::Status status = RunAllocPlan(Args(config, overrides), out);
  EXPECT_TRUE(status.ok()) << config << ": " << status << "\n" << out.str();
  return out.str();
}

TEST(Examples, Gsm8kGrpoLoadsAndPlansOnOneNode) {
  ExpectLoads(kGsm8k, {kSmallModel});
  const std::string plan = Plan(kGsm8k, {kSmallModel});
  EXPECT_TRUE(absl::StrContains(plan, "allocation_mode  sglang:d4+megatron:d4")) << plan;
  EXPECT_TRUE(absl::StrContains(plan, "8 needed (1 nodes of 8)")) << plan;
}

TEST(Examples, Gsm8kGrpoSwitchesToFsdpWithOneOverride) {
  const std::string plan = Plan(kGsm8k, {kSmallModel, "allocation_mode=sglang:d4+fsdp:d4"});
  EXPECT_TRUE(absl::StrContains(plan, "training         fsdp:d4: dp=4")) << plan;
}

TEST(Examples, Qwen3MoeMegatronLoadsAndPlansAsRecorded) {
  ExpectLoads(kMegatron, {kQwen3_30B});
  const std::string plan = Plan(kMegatron, {kQwen3_30B});
  std::ifstream doc("docs/examples.md");
  ASSERT_TRUE(doc.good()) << "cannot open docs/examples.md";
  std::stringstream text;
  text << doc.rdbuf();
  const std::string begin = "<!-- alloc_plan output: qwen3_30b_a3b_megatron -->\n```text\n";
  const size_t at = text.str().find(begin);
  ASSERT_NE(at, std::string::npos) << "docs/examples.md lacks the recorded plan";
  const size_t end = text.str().find("```\n", at + begin.size());
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(text.str().substr(at + begin.size(), end - at - begin.size()), plan)
      << "the planner's output changed: update docs/examples.md";
}

TEST(Examples, SlurmScriptIsValidBash) {
  EXPECT_EQ(std::system("bash -n examples/slurm/qwen3_30b_a3b.sbatch"), 0);
  EXPECT_EQ(std::system("bash -n examples/slurm/pipeline.sbatch"), 0);
}

}  // namespace
}  // namespace moerl
