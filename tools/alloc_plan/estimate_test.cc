// Checks the planner's arithmetic against megatron-reference.md §6.2 (parameter
// counts) and §6.3 (static memory per GPU with the distributed optimizer).
#include "tools/alloc_plan/estimate.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/alloc_mode/alloc_mode.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/alloc_plan/plan.h"
#include "trainer/model/config.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

ModelConfig Load(const std::string& dir) {
  absl::StatusOr<ModelConfig> model = LoadActorModelConfig("tools/alloc_plan/testdata/" + dir);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : ModelConfig();
}

TEST(ParameterCounts, Qwen3_30B_A3BMatchesTheReference) {
  const ParameterCounts c = CountParameters(Load("qwen3-30b-a3b"));
  EXPECT_EQ(c.attention_per_layer, 18874368);  // 18.87 M
  EXPECT_EQ(c.router_per_layer, 262144);       // 0.262 M
  EXPECT_EQ(c.expert, 4718592);                // 4.72 M
  EXPECT_EQ(c.total, 30532122624);             // 30.53 B (official 30.5 B)
  EXPECT_EQ(c.active, 3353032704);             // 3.35 B (official 3.3 B)
  EXPECT_NEAR(c.experts_total / 1e9, 28.99, 0.005);
  EXPECT_NEAR((c.embedding + c.lm_head) / 1e9, 0.622, 0.0005);
  EXPECT_NEAR((c.total - c.embedding - c.lm_head) / 1e9, 29.91, 0.005);
}

TEST(ParameterCounts, Qwen3_235B_A22BMatchesTheReference) {
  const ParameterCounts c = CountParameters(Load("qwen3-235b-a22b"));
  EXPECT_NEAR(c.attention_per_layer / 1e6, 71.30, 0.005);
  EXPECT_NEAR(c.expert / 1e6, 18.87, 0.005);
  EXPECT_NEAR(c.total / 1e9, 235.09, 0.005);
  EXPECT_NEAR(c.active / 1e9, 22.19, 0.005);
  EXPECT_NEAR(c.experts_total / 1e9, 227.10, 0.005);
}

struct MemoryRow {
  const char* model;
  const char* allocation;
  bool last_stage;  // the reference's 235B rows use the 11-layer (last) stages
  double dense_b, expert_b, static_gib;
};

TEST(TrainingEstimate, StaticMemoryMatchesTheReferenceTable) {
  const MemoryRow rows[] = {
      // The seed's 16-GPU layout: 0.27 B / 1.81 B, 3.0 + 30.4 = 33.4 GiB.
      {"qwen3-30b-a3b", "megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)", false, 0.27, 1.81, 33.4},
      {"qwen3-30b-a3b", "megatron:d8e8", false, 1.54, 3.62, 71.5},
      {"qwen3-30b-a3b", "megatron:d16e16", false, 1.54, 1.81, 40.1},
      {"qwen3-30b-a3b", "megatron:d32e8", false, 1.54, 3.62, 39.5},
      {"qwen3-235b-a22b", "megatron:d16p8t2e32", true, 0.71, 0.83, 18.4},
      {"qwen3-235b-a22b", "megatron:d32p4e32", true, 2.28, 1.74, 42.6},
  };
  for (const MemoryRow& row : rows) {
    SCOPED_TRACE(std::string(row.model) + " " + row.allocation);
    absl::StatusOr<Allocation> a = ParseAllocation(row.allocation);
    ASSERT_TRUE(a.ok()) << a.status();
    const TrainingEstimate e = EstimateTraining(Load(row.model), a->dims, a->backend, {});
    const StageEstimate& s = row.last_stage ? e.stages.back() : e.stages.front();
    EXPECT_NEAR(s.dense_params / 1e9, row.dense_b, 0.011);
    EXPECT_NEAR(s.expert_params / 1e9, row.expert_b, 0.011);
    EXPECT_NEAR(s.static_bytes() / kGiB, row.static_gib, 0.06) << "static GiB";
  }
}

TEST(TrainingEstimate, SeedLayoutNeedsAbout33GiBAndHas32ExpertsPerRank) {
  const ParallelDims dims = ParseAllocation("megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)")->dims;
  const TrainingEstimate e = EstimateTraining(Load("qwen3-30b-a3b"), dims, Backend::kMegatron, {});
  EXPECT_NEAR(e.worst_stage.static_bytes() / kGiB, 33.4, 0.05);
  EXPECT_EQ(e.experts_per_rank, 32);
  EXPECT_EQ(e.dense_shard_group, 2);
  EXPECT_EQ(e.expert_shard_group, 1);
  ASSERT_EQ(e.stages.size(), 4u);
  for (const StageEstimate& s : e.stages) EXPECT_EQ(s.layers, 12);
  EXPECT_TRUE(e.problems.empty());
  // bf16 moments (precision-aware optimizer) turn 12 bytes into 8.
  PlanOptions options;
  options.precision_aware_optimizer = true;
  const TrainingEstimate lean = EstimateTraining(Load("qwen3-30b-a3b"), dims, Backend::kMegatron, options);
  EXPECT_LT(lean.worst_stage.static_bytes(), e.worst_stage.static_bytes());
}

TEST(TrainingEstimate, CommunicationIsZeroForDimensionsOfSizeOne) {
  const TrainingEstimate e = EstimateTraining(Load("qwen3-30b-a3b"),
                                              ParseAllocation("megatron:d1")->dims,
                                              Backend::kMegatron, {});
  EXPECT_EQ(e.comm.total(), 0.0);
  const TrainingEstimate f = EstimateTraining(
      Load("qwen3-30b-a3b"), ParseAllocation("megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)")->dims,
      Backend::kMegatron, {});
  EXPECT_GT(f.comm.tp, 0);
  EXPECT_GT(f.comm.cp, 0);
  EXPECT_GT(f.comm.ep, 0);
  EXPECT_GT(f.comm.pp, 0);
  EXPECT_GT(f.comm.dp, 0);  // dense state shards over dp*cp = 2
}

TEST(TrainingEstimate, ReportsEveryDivisibilityProblem) {
  const TrainingEstimate e = EstimateTraining(
      Load("qwen3-30b-a3b"), ParseAllocation("megatron:p5t3e3")->dims, Backend::kMegatron, {});
  const std::string all = ::testing::PrintToString(e.problems);
  EXPECT_THAT(all, HasSubstr("attention heads (32) is not divisible by tp (3)"));
  EXPECT_THAT(all, HasSubstr("KV heads (4) is not divisible by tp (3)"));
  EXPECT_THAT(all, HasSubstr("layers (48) is not divisible by pp (5)"));
  EXPECT_THAT(all, HasSubstr("experts (128) is not divisible by ep (3)"));
  EXPECT_EQ(e.stages.front().layers, 10);
  EXPECT_EQ(e.stages.back().layers, 9);
}

// The planner reads config.json with the trainer's parser (ModelConfig);
// its own errors are tested in trainer/model/config_test.cc. What the planner
// adds: actor.path may be a directory, and a missing file says how to fix it.
TEST(LoadActorModelConfig, TakesADirectoryOrTheFileAndNamesAMissingConfigJson) {
  absl::StatusOr<ModelConfig> from_dir = LoadActorModelConfig("tools/alloc_plan/testdata/qwen3-30b-a3b");
  ASSERT_TRUE(from_dir.ok()) << from_dir.status();
  absl::StatusOr<ModelConfig> from_file =
      LoadActorModelConfig("tools/alloc_plan/testdata/qwen3-30b-a3b/config.json");
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(from_dir->ToJson(), from_file->ToJson());
  EXPECT_EQ(from_dir->num_experts, 128);
  EXPECT_EQ(from_dir->NumMoeLayers(), 48);

  absl::StatusOr<ModelConfig> missing = LoadActorModelConfig("tools/alloc_plan");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("cannot read model config 'tools/alloc_plan/config.json': No such file"));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("actor.path must be"));
}

TEST(LoadActorModelConfig, BadConfigJsonIsAnErrorNamingTheFileAndTheKey) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/bad_config.json";
  std::ofstream(path) << R"({"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
      "vocab_size": 10, "intermediate_size": 4, "num_experts": 4, "num_experts_per_tok": 8,
      "moe_intermediate_size": 2})";
  absl::StatusOr<ModelConfig> model = LoadActorModelConfig(path);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("\"num_experts_per_tok\" (8) exceeds \"num_experts\" (4)"));
}

TEST(ParameterCounts, DenseModelsHaveNoExpertsAndDenseMlpLayers) {
  absl::StatusOr<ModelConfig> model = ModelConfig::FromJson(
      "{\"hidden_size\": 8, \"num_hidden_layers\": 2, \"num_attention_heads\": 2, "
      "\"vocab_size\": 10, \"intermediate_size\": 4, \"tie_word_embeddings\": true}",
      "dense.json");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->NumMoeLayers(), 0);
  const ParameterCounts c = CountParameters(*model);
  // 2 layers x (attn 4*8*8 + norms 2*8+2*4 + mlp 3*8*4) + embedding 80 + final norm 8.
  EXPECT_EQ(c.total, 2 * (256 + 24 + 96) + 80 + 8);
  EXPECT_EQ(c.active, c.total);
}

}  // namespace
}  // namespace moerl
