// The model against transformers (the oracle): logits, loss, router choices
// and every gradient, for a tiny Qwen3-MoE (with a dense layer in the middle)
// and a tiny dense Qwen3 with tied embeddings. Fixtures come from
// tools/model/make_oracle_fixture.py.
#include <ATen/core/grad_mode.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/equal.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/safetensors/checkpoint_dir.h"
#include "gtest/gtest.h"
#include "trainer/model/fixture.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/model.h"

namespace moerl {
namespace {

const char kMoeDir[] = "trainer/model/testdata/moe";
const char kDenseDir[] = "trainer/model/testdata/dense";

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

std::string TmpDir(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

ModelInput InputFromBatch(const at::Tensor& ids_bl) {
  std::vector<std::vector<int64_t>> seqs;
  for (int64_t b = 0; b < ids_bl.size(0); ++b) {
    at::Tensor row = ids_bl[b].contiguous();
    seqs.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  }
  return ModelInput::Pack(seqs);
}

struct Loaded {
  std::shared_ptr<Qwen3Model> model;
  std::unique_ptr<OracleFixture> fx;
};

Loaded Load(const std::string& dir) {
  Loaded l;
  auto model = LoadHfModel(dir);
  EXPECT_TRUE(model.ok()) << model.status();
  auto fx = OracleFixture::Open(dir + "/oracle.safetensors");
  EXPECT_TRUE(fx.ok()) << fx.status();
  if (model.ok()) l.model = *model;
  if (fx.ok()) l.fx = std::move(*fx);
  return l;
}

void ExpectLogitsMatch(const std::string& dir) {
  Loaded l = Load(dir);
  ASSERT_TRUE(l.model && l.fx);
  at::NoGradGuard no_grad;
  at::Tensor ids_bl = l.fx->Get("input_ids");
  ModelOutput out = l.model->Forward(InputFromBatch(ids_bl));
  at::Tensor want_blv = l.fx->Get("logits");
  at::Tensor got_tv = l.model->Logits(out.hidden_td);
  const double diff = MaxAbsDiff(got_tv, want_blv.reshape({-1, want_blv.size(2)}));  // [B, L, V] -> [T, V]
  std::cout << dir << ": max |logits - transformers| = " << diff << "\n";
  EXPECT_LE(diff, 1e-5) << dir << ": max |logits - transformers| = " << diff;
}

void ExpectLossAndGradsMatch(const std::string& dir, ExpertPath path) {
  Loaded l = Load(dir);
  ASSERT_TRUE(l.model && l.fx);
  l.model->SetExpertPath(path);
  at::Tensor loss = l.model->CausalLmLoss(InputFromBatch(l.fx->Get("input_ids")));
  const double loss_diff = std::abs(loss.item<double>() - l.fx->Get("loss").item<double>());
  EXPECT_LE(loss_diff, 1e-5) << dir << ": loss " << loss.item<double>() << " vs transformers "
                             << l.fx->Get("loss").item<double>();
  loss.backward();
  int compared = 0;
  double worst = 0;
  std::string worst_name;
  for (const HfBinding& b : HfBindings(*l.model, /*grads=*/true)) {
    at::Tensor want = l.fx->Get("grad." + b.hf_name);
    ASSERT_TRUE(want.defined()) << "fixture lacks grad." << b.hf_name;
    ASSERT_EQ(want.sizes(), b.view.sizes()) << b.hf_name;
    const double scale = std::max(want.abs().max().item<double>(), 1e-8);
    const double rel = MaxAbsDiff(b.view, want) / scale;
    if (rel > worst) {
      worst = rel;
      worst_name = b.hf_name;
    }
    ++compared;
  }
  std::cout << dir << ": loss diff " << loss_diff << ", worst relative gradient difference " << worst
            << " (" << worst_name << ") over " << compared << " tensors\n";
  EXPECT_LE(worst, 1e-5) << dir << ": worst relative gradient difference " << worst << " in " << worst_name;
  EXPECT_GT(compared, 10);
}

TEST(Qwen3MoeOracle, LogitsMatchTransformers) { ExpectLogitsMatch(kMoeDir); }

TEST(Qwen3DenseOracle, LogitsMatchTransformersWithTiedEmbeddings) { ExpectLogitsMatch(kDenseDir); }

TEST(Qwen3MoeOracle, RouterChoicesAndAuxLossMatchTransformers) {
  Loaded l = Load(kMoeDir);
  ASSERT_TRUE(l.model && l.fx);
  at::NoGradGuard no_grad;
  ModelOutput out = l.model->Forward(InputFromBatch(l.fx->Get("input_ids")));
  ASSERT_EQ(out.moe_layers, (std::vector<int64_t>{0, 2}));  // layer 1 is mlp_only
  for (size_t i = 0; i < out.moe_layers.size(); ++i) {
    at::Tensor want = l.fx->Get("router." + std::to_string(out.moe_layers[i]) + ".topk_ids");
    EXPECT_TRUE(at::equal(out.topk_ids_tk[i], want)) << "layer " << out.moe_layers[i];
  }
  const double aux_diff = std::abs(out.aux_loss.item<double>() - l.fx->Get("aux_loss").item<double>());
  EXPECT_LE(aux_diff, 1e-6) << "aux loss " << out.aux_loss.item<double>() << " vs transformers "
                            << l.fx->Get("aux_loss").item<double>();
}

TEST(Qwen3MoeOracle, LossAndAllGradientsMatchTransformersOnGroupedPath) {
  ExpectLossAndGradsMatch(kMoeDir, ExpertPath::kGrouped);
}

TEST(Qwen3MoeOracle, LossAndAllGradientsMatchTransformersOnReferencePath) {
  ExpectLossAndGradsMatch(kMoeDir, ExpertPath::kReference);
}

TEST(Qwen3DenseOracle, LossAndAllGradientsMatchTransformers) {
  ExpectLossAndGradsMatch(kDenseDir, ExpertPath::kGrouped);
}

TEST(Qwen3Model, PackedSequencesDoNotAttendAcrossBoundaries) {
  Loaded l = Load(kMoeDir);
  ASSERT_TRUE(l.model);
  at::NoGradGuard no_grad;
  std::vector<int64_t> a = {5, 9, 14, 3, 77, 2, 8}, b = {100, 4, 6};
  at::Tensor packed = l.model->Forward(ModelInput::Pack({a, b})).hidden_td;
  at::Tensor alone_a = l.model->Forward(ModelInput::Pack({a})).hidden_td;
  at::Tensor alone_b = l.model->Forward(ModelInput::Pack({b})).hidden_td;
  EXPECT_LE(MaxAbsDiff(packed.narrow(0, 0, 7), alone_a), 1e-5);
  EXPECT_LE(MaxAbsDiff(packed.narrow(0, 7, 3), alone_b), 1e-5);
}

TEST(Qwen3Model, Bf16ForwardTracksFp32) {
  Loaded l = Load(kMoeDir);
  ASSERT_TRUE(l.model && l.fx);
  at::NoGradGuard no_grad;
  ModelInput in = InputFromBatch(l.fx->Get("input_ids"));
  at::Tensor fp32 = l.model->Logits(l.model->Forward(in).hidden_td);
  l.model->to(at::kBFloat16);
  at::Tensor bf16 = l.model->Logits(l.model->Forward(in).hidden_td);
  EXPECT_EQ(bf16.scalar_type(), at::kBFloat16);
  const double diff = MaxAbsDiff(bf16, fp32), scale = fp32.abs().max().item<double>();
  EXPECT_LE(diff, 0.05 * scale) << "bf16 vs fp32 logits: max diff " << diff << ", scale " << scale;
}

TEST(HfWeights, LoadThenSaveGivesByteIdenticalTensors) {
  Loaded l = Load(kMoeDir);
  ASSERT_TRUE(l.model);
  const std::string out_dir = TmpDir("resaved");
  ASSERT_TRUE(SaveHfCheckpoint(*l.model, out_dir, at::kFloat, /*max_shard_bytes=*/300000).ok());
  auto src = CheckpointDir::Open(kMoeDir);
  auto dst = CheckpointDir::Open(out_dir);
  ASSERT_TRUE(src.ok() && dst.ok());
  ASSERT_EQ((*src)->Names(), (*dst)->Names());
  for (const std::string& name : (*src)->Names()) {
    auto a = (*src)->Get(name);
    auto b = (*dst)->Get(name);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->info->shape, b->info->shape) << name;
    ASSERT_EQ(a->bytes.size(), b->bytes.size()) << name;
    EXPECT_EQ(std::memcmp(a->bytes.data(), b->bytes.data(), a->bytes.size()), 0) << name;
  }
  // And it loads back into a model with the same config.
  auto again = LoadHfModel(out_dir);
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(HfWeights, WrongShapeIsAnErrorNamingTheTensor) {
  ModelConfig config = *ModelConfig::FromFile(std::string(kMoeDir) + "/config.json");
  config.moe_intermediate_size = 16;
  Qwen3Model model(config);
  absl::Status s = LoadHfWeights(kMoeDir, &model);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("gate_proj.weight"), std::string::npos) << s;
}

TEST(Qwen3Model, InitializeWeightsIsSeeded) {
  ModelConfig config = *ModelConfig::FromFile(std::string(kMoeDir) + "/config.json");
  Qwen3Model a(config), b(config), c(config);
  a.InitializeWeights(7);
  b.InitializeWeights(7);
  c.InitializeWeights(8);
  auto pa = a.parameters(), pb = b.parameters(), pc = c.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  bool any_differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(at::equal(pa[i], pb[i]));
    any_differs |= !at::equal(pa[i], pc[i]);
  }
  EXPECT_TRUE(any_differs);
}

}  // namespace
}  // namespace moerl
