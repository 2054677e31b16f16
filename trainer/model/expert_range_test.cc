// A model whose MoE layers hold a range of the experts (expert parallelism):
// initialisation, loading and saving see exactly that range, and the router
// losses without a reducer equal the reference functions in moe.h.
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>

#include <string>

#include "trainer/model/hf_weights.h"
#include "trainer/model/model.h"
#include "trainer/model/router_losses.h"

namespace moerl {
namespace {

const char kMoeDir[] = "trainer/model/testdata/moe";

void KeepRange(Qwen3Model& model, int64_t first, int64_t count) {
  for (const auto& layer : model.layers()) {
    if (layer->moe) layer->moe->experts->KeepRange(first, count);
  }
}

TEST(ExpertRange, InitializationGivesTheFullModelsValuesForTheRange) {
  auto config = ModelConfig::FromFile(std::string(kMoeDir) + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  Qwen3Model full(*config), part(*config);
  full.InitializeWeights(5);
  KeepRange(part, 4, 4);
  part.InitializeWeights(5);
  for (size_t l = 0; l < full.layers().size(); ++l) {
    if (!full.layers()[l]->moe) continue;
    const Experts& f = *full.layers()[l]->moe->experts;
    const Experts& p = *part.layers()[l]->moe->experts;
    EXPECT_EQ(p.first_expert(), 4);
    EXPECT_EQ(p.num_local(), 4);
    EXPECT_TRUE(p.gate_up_proj.equal(f.gate_up_proj.narrow(0, 4, 4)));
    EXPECT_TRUE(p.down_proj.equal(f.down_proj.narrow(0, 4, 4)));
  }
  // Every other weight is unaffected by the sharding.
  auto fp = full.named_parameters();
  for (auto& item : part.named_parameters()) {
    if (item.key().find("experts") != std::string::npos) continue;
    EXPECT_TRUE(item.value().equal(fp[item.key()])) << item.key();
  }
}

TEST(ExpertRange, LoadingReadsOnlyTheHeldExpertsAndSavingRefuses) {
  auto full = LoadHfModel(kMoeDir);
  ASSERT_TRUE(full.ok()) << full.status();
  auto config = ModelConfig::FromFile(std::string(kMoeDir) + "/config.json");
  ASSERT_TRUE(config.ok());
  Qwen3Model part(*config);
  KeepRange(part, 2, 2);
  ASSERT_TRUE(LoadHfWeights(kMoeDir, &part).ok());
  for (size_t l = 0; l < part.layers().size(); ++l) {
    if (!part.layers()[l]->moe) continue;
    EXPECT_TRUE(part.layers()[l]->moe->experts->gate_up_proj.equal(
        (*full)->layers()[l]->moe->experts->gate_up_proj.narrow(0, 2, 2)));
    EXPECT_TRUE(part.layers()[l]->moe->experts->down_proj.equal(
        (*full)->layers()[l]->moe->experts->down_proj.narrow(0, 2, 2)));
  }
  bool named = false;
  for (const HfBinding& b : HfBindings(part)) named |= b.hf_name == "model.layers.0.mlp.experts.3.down_proj.weight";
  EXPECT_TRUE(named) << "bindings use the global expert index";
  absl::Status save = SaveHfCheckpoint(part, std::string(getenv("TEST_TMPDIR")) + "/out", at::kFloat, 1 << 30);
  EXPECT_EQ(save.code(), absl::StatusCode::kFailedPrecondition) << save;
}

TEST(BatchRouterLosses, WithoutAReducerEqualTheReference) {
  at::manual_seed(3);
  std::vector<at::Tensor> logits = {at::randn({11, 8}), at::randn({11, 8})};
  RouterLosses l = BatchRouterLosses(logits, 2, nullptr);
  EXPECT_NEAR(l.aux.item<double>(), LoadBalancingLoss(logits, 2).item<double>(), 1e-6);
  EXPECT_NEAR(l.z.item<double>(), RouterZLoss(logits).item<double>(), 1e-5);
}

}  // namespace
}  // namespace moerl
