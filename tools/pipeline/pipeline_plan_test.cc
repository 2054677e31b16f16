#include "tools/pipeline/pipeline_plan.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moerl {
namespace {

std::string WriteConfig(const std::string& name, const std::string& text) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << text;
  return path;
}

constexpr char kBase[] =
    "experiment_name: gsm8k-grpo\n"
    "trial_name: trial0\n"
    "cluster:\n"
    "  fileroot: /tmp/runs\n"
    "allocation_mode: sglang:d2+megatron:(attn:d2|ffn:e2)\n";

TEST(PipelinePlan, WritesTheResolvedConfigIntoTheRunFolder) {
  const std::string root = std::string(std::getenv("TEST_TMPDIR")) + "/written";
  const std::string config = WriteConfig("write.yaml", kBase);
  ASSERT_TRUE(WriteRunConfig({"--config", config, "cluster.fileroot=" + root, "seed=7"}).ok());
  std::ifstream in(root + "/gsm8k-grpo/trial0/config.yaml");
  ASSERT_TRUE(in.good());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("seed: 7"), std::string::npos) << text;
  EXPECT_NE(text.find("fileroot: " + root), std::string::npos) << text;
}

TEST(PipelinePlan, ServersAndRanksComeFromTheAllocation) {
  const std::string config = WriteConfig("base.yaml", kBase);
  absl::StatusOr<PipelinePlan> plan = LoadPipelinePlan({"--config", config});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->run_dir, "/tmp/runs/gsm8k-grpo/trial0");
  EXPECT_EQ(plan->servers, 2);
  EXPECT_EQ(plan->gpus_per_server, 1);
  EXPECT_EQ(plan->trainer_ranks, 2);
  EXPECT_EQ(plan->training_backend, "megatron");
  EXPECT_EQ(plan->inference_backend, "sglang");
  EXPECT_EQ(plan->scheduler, "local");
  EXPECT_EQ(plan->prompt_ring, "gsm8k-grpo.trial0.prompts");
  EXPECT_EQ(plan->trajectory_ring, "gsm8k-grpo.trial0.trajectories");
}

TEST(PipelinePlan, TheSeedsLayoutNeedsThirtyTwoRanksAndFourServers) {
  const std::string config = WriteConfig("seed.yaml", kBase);
  absl::StatusOr<PipelinePlan> plan = LoadPipelinePlan(
      {"--config", config, "allocation_mode=sglang:d4t4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)",
       "scheduler.type=ray", "cluster.n_nodes=4"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->servers, 4);
  EXPECT_EQ(plan->gpus_per_server, 4);
  EXPECT_EQ(plan->trainer_ranks, 16);
  EXPECT_EQ(plan->scheduler, "ray");
  // As examples/slurm places it: ranks on nodes 0-1, two servers on each of 2-3.
  EXPECT_EQ(plan->trainer_rank_nodes,
            std::vector<int>({0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(plan->server_nodes, std::vector<int>({2, 2, 3, 3}));
  EXPECT_NE(ShellAssignments(*plan).find("server_nodes='2 2 3 3'\n"), std::string::npos);
}

TEST(PipelinePlan, RayPlacesTheDefaultOnOneNode) {
  const std::string config = WriteConfig("ray1.yaml", kBase);
  absl::StatusOr<PipelinePlan> plan = LoadPipelinePlan(
      {"--config", config, "allocation_mode=sglang:d1+megatron:(attn:d2|ffn:e2)",
       "scheduler.type=ray", "cluster.n_nodes=1"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->ray_nodes, 1);
  EXPECT_EQ(plan->trainer_rank_nodes, std::vector<int>({0, 0}));
  EXPECT_EQ(plan->server_nodes, std::vector<int>({0}));
}

TEST(PipelinePlan, RayServerDoesNotStraddleNodes) {
  const std::string config = WriteConfig("ray2.yaml", kBase);
  absl::StatusOr<PipelinePlan> plan = LoadPipelinePlan(
      {"--config", config, "allocation_mode=sglang:d2t4+megatron:d6", "scheduler.type=ray",
       "cluster.n_nodes=3", "cluster.n_gpus_per_node=8"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  // Ranks take slots 0-5; the first server needs 4 and node 0 has 2 left.
  EXPECT_EQ(plan->server_nodes, std::vector<int>({1, 1}));
}

TEST(PipelinePlan, RayRefusesALayoutLargerThanTheCluster) {
  const std::string config = WriteConfig("ray3.yaml", kBase);
  absl::StatusOr<PipelinePlan> plan = LoadPipelinePlan(
      {"--config", config, "allocation_mode=sglang:d4t4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)",
       "scheduler.type=ray", "cluster.n_nodes=3"});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("needs 32 GPUs"), std::string::npos) << plan.status();
  EXPECT_NE(plan.status().message().find("cluster.n_nodes x cluster.n_gpus_per_node = 3 x 8"),
            std::string::npos)
      << plan.status();
  // The local launcher ignores the cluster's size.
  EXPECT_TRUE(LoadPipelinePlan({"--config", config, "cluster.n_nodes=1",
                                "allocation_mode=sglang:d4t4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)"})
                  .ok());
}

TEST(PipelinePlan, ExternalServersAreNotStarted) {
  const std::string config = WriteConfig("external.yaml", kBase);
  absl::StatusOr<PipelinePlan> plan =
      LoadPipelinePlan({"--config", config, "+rollout.server_addrs=10.0.0.1:30000, http://h2:30001"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->servers, 0);
  ASSERT_EQ(plan->external_servers.size(), 2u);
  EXPECT_EQ(plan->external_servers[1], "h2:30001");
  EXPECT_NE(ShellAssignments(*plan).find("external_servers='10.0.0.1:30000 h2:30001'\n"),
            std::string::npos);
}

TEST(PipelinePlan, BadInputNamesTheKey) {
  const std::string config = WriteConfig("bad.yaml", kBase);
  absl::StatusOr<PipelinePlan> plan =
      LoadPipelinePlan({"--config", config, "+rollout.server_addrs=nohost"});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("rollout.server_addrs"), std::string::npos);

  plan = LoadPipelinePlan({"--config", config, "+pipeline.stage_timeout_s=0"});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("pipeline.stage_timeout_s"), std::string::npos);

  plan = LoadPipelinePlan({"--config", config, "+pipeline.stage_timout_s=5"});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("pipeline.stage_timeout_s"), std::string::npos)
      << "the closest valid key is suggested: " << plan.status();

  // A plain override may add a key the YAML lacks, but not a misspelt one in
  // a section a binary owns.
  plan = LoadPipelinePlan({"--config", config, "cluster.n_gpu_per_node=4"});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("cluster.n_gpus_per_node"), std::string::npos)
      << plan.status();

  plan = LoadPipelinePlan({"--config", config, "allocation_mode=sglang:d2"});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("allocation_mode"), std::string::npos);
}

TEST(PipelinePlan, DryRunIsAKeyOfThePipelineSection) {
  const std::string config = WriteConfig("dry.yaml", kBase);
  absl::StatusOr<PipelinePlan> plan = LoadPipelinePlan({"--config", config});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_NE(ShellAssignments(*plan).find("dry_run='0'\n"), std::string::npos);
  plan = LoadPipelinePlan({"--config", config, "pipeline.dry_run=True"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->dry_run);
  EXPECT_NE(ShellAssignments(*plan).find("dry_run='1'\n"), std::string::npos);
}

// actor.path given as a Hugging Face model id is resolved before anything
// starts; the fake cache lives under TEST_TMPDIR (HF_HUB_CACHE).
TEST(PipelinePlan, AModelIdResolvesInTheHuggingFaceCacheOrFailsThePlan) {
  const std::string hub = std::string(std::getenv("TEST_TMPDIR")) + "/hub";
  const std::string snapshot = hub + "/models--Qwen--Qwen3-30B-A3B/snapshots/abc123";
  ASSERT_EQ(std::system(("mkdir -p " + snapshot + " " + hub + "/models--Qwen--Qwen3-30B-A3B/refs").c_str()), 0);
  std::ofstream(hub + "/models--Qwen--Qwen3-30B-A3B/refs/main") << "abc123";
  ASSERT_EQ(setenv("HF_HUB_CACHE", hub.c_str(), 1), 0);
  const std::string config = WriteConfig("id.yaml", kBase);
  absl::StatusOr<PipelinePlan> plan =
      LoadPipelinePlan({"--config", config, "actor.path=Qwen/Qwen3-30B-A3B"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->model_path, snapshot);
  EXPECT_NE(ShellAssignments(*plan).find("model_path='" + snapshot + "'\n"), std::string::npos);

  plan = LoadPipelinePlan({"--config", config, "actor.path=Qwen/Qwen3-235B-A22B"});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(plan.status().message().find("key 'actor.path'"), std::string::npos) << plan.status();
  EXPECT_NE(plan.status().message().find("hf download Qwen/Qwen3-235B-A22B"), std::string::npos)
      << plan.status();
  unsetenv("HF_HUB_CACHE");
}

TEST(PipelinePlan, QuotesValuesForTheShell) {
  const std::string config = WriteConfig("quote.yaml", kBase);
  absl::StatusOr<PipelinePlan> plan =
      LoadPipelinePlan({"--config", config, "cluster.fileroot=/tmp/it's here"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_NE(ShellAssignments(*plan).find("run_dir='/tmp/it'\\''s here/gsm8k-grpo/trial0'\n"),
            std::string::npos);
}

}  // namespace
}  // namespace moerl
