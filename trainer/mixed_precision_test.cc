// actor.dtype=bfloat16: the model computes in bf16, TrainOptimizer keeps fp32
// master weights. Updates too small for bf16 accumulate in the masters;
// training follows the fp32 trainer within bf16's tolerance; a checkpoint
// resumes bit-identically (the masters travel in optimizer/master); weights
// published in float32 are the masters.
#include <ATen/ops/equal.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "gtest/gtest.h"
#include "common/weights_dir.h"
#include "trainer/checkpoint.h"
#include "trainer/full_model.h"
#include "trainer/model/hf_weights.h"
#include "trainer/optimizer.h"
#include "trainer/sft.h"
#include "trainer/testing/trainer_fixture.h"
#include "trainer/train_step.h"
#include "trainer/weight_publisher.h"

namespace moerl {
namespace {

std::shared_ptr<Qwen3Model> LoadTiny(at::ScalarType dtype) { return LoadTestModel(dtype); }

std::vector<TrainSequence> RandomSequences(int n, uint64_t seed) { return RandomTrainSequences(n, seed, 4); }

OptimizerSettings Settings(double lr) {
  OptimizerSettings o;
  o.lr = lr;
  o.weight_decay = 0.0;
  o.gradient_clipping = 1.0;
  return o;
}

// 1 - 50 steps of ~1e-4 is 0.995: bf16 steps are 2^-8 apart below 1, so a
// bf16 parameter updated in place rounds every step back to 1; the master
// copy keeps the sum and the parameter moves once it is a half-step away.
TEST(MasterWeights, SmallUpdatesAccumulate) {
  at::Tensor mixed = at::ones({4}, at::kBFloat16).set_requires_grad(true);
  at::Tensor plain = at::ones({4}, at::kBFloat16).set_requires_grad(true);
  TrainOptimizer opt({mixed}, Settings(1e-4), LrSchedule{});
  ASSERT_EQ(opt.master_weights().size(), 1u);
  torch::optim::AdamW bf16_only({plain}, torch::optim::AdamWOptions(1e-4).weight_decay(0.0));
  for (int step = 0; step < 50; ++step) {
    opt.ZeroGrad();
    mixed.mutable_grad() = at::full({4}, 0.5, at::kBFloat16);
    ASSERT_TRUE(opt.Step(0).updated);
    bf16_only.zero_grad();
    plain.mutable_grad() = at::full({4}, 0.5, at::kBFloat16);
    bf16_only.step();
  }
  EXPECT_EQ(plain.max().item<double>(), 1.0) << "bf16 alone was expected to lose the updates";
  const double master = opt.master_weights()[0].max().item<double>();
  EXPECT_EQ(opt.master_weights()[0].scalar_type(), at::kFloat);
  EXPECT_NEAR(master, 1.0 - 50 * 1e-4, 1e-5);
  EXPECT_EQ(mixed.scalar_type(), at::kBFloat16);
  EXPECT_EQ(mixed.max().item<double>(), at::tensor({master}).to(at::kBFloat16).item<double>());
  EXPECT_LT(mixed.max().item<double>(), 1.0);
}

TEST(MasterWeights, Fp32ParametersHaveNone) {
  at::Tensor p = at::ones({4}).set_requires_grad(true);
  TrainOptimizer opt({p}, Settings(1e-4), LrSchedule{});
  EXPECT_TRUE(opt.master_weights().empty());
}

// The same SFT steps from the same weights in fp32 and in bf16 with masters:
// the losses agree within bf16's precision and the weights move the same way.
TEST(MasterWeights, Bf16TrainingFollowsFp32) {
  const std::vector<TrainSequence> seqs = RandomSequences(8, 5);
  TrainStepOptions step_options;
  step_options.ppo_n_minibatches = 2;
  auto fp32 = LoadTiny(at::kFloat);
  auto bf16 = LoadTiny(at::kBFloat16);
  std::vector<at::Tensor> init;
  for (const at::Tensor& p : fp32->parameters()) init.push_back(p.detach().clone());
  TrainOptimizer fp32_opt(fp32->parameters(), Settings(1e-3), LrSchedule{});
  TrainOptimizer bf16_opt(bf16->parameters(), Settings(1e-3), LrSchedule{});
  SftObjective objective(1.0);
  for (int64_t step = 0; step < 4; ++step) {
    StatsRecorder a, b;
    ASSERT_TRUE(RunTrainStep(*fp32, fp32_opt, objective, seqs, step_options, step, &a).ok());
    ASSERT_TRUE(RunTrainStep(*bf16, bf16_opt, objective, seqs, step_options, step, &b).ok());
    const double nll_a = a.Value("sft/nll"), nll_b = b.Value("sft/nll");
    EXPECT_NEAR(nll_b, nll_a, 2e-2 * std::abs(nll_a)) << "step " << step;
  }
  // Cosine of the two updates over all weights (fp32 vs the bf16 run's masters).
  double dot = 0, na = 0, nb = 0;
  auto params = fp32->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor da = (params[i].detach() - init[i]).to(at::kDouble);
    at::Tensor db = (bf16_opt.master_weights()[i] - init[i]).to(at::kDouble);
    dot += (da * db).sum().item<double>();
    na += da.pow(2).sum().item<double>();
    nb += db.pow(2).sum().item<double>();
  }
  const double cosine = dot / std::sqrt(na * nb);
  EXPECT_GT(cosine, 0.95) << "update cosine " << cosine;
  EXPECT_NEAR(std::sqrt(nb / na), 1.0, 0.1);
  // The model's bf16 weights are the masters rounded.
  auto low = bf16->parameters();
  for (size_t i = 0; i < low.size(); ++i) {
    EXPECT_TRUE(at::equal(low[i], bf16_opt.master_weights()[i].to(at::kBFloat16))) << "parameter " << i;
  }
}

// 4 steps straight vs 2, checkpoint, a fresh model and optimizer, 2 more:
// bit-identical in bf16 because optimizer/master carries the masters.
TEST(MasterWeights, CheckpointResumeIsBitIdentical) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/ckpt_bf16";
  std::filesystem::remove_all(dir);
  SftData data = SftData::FromSequences(RandomSequences(16, 11));
  TrainStepOptions step_options;
  step_options.ppo_n_minibatches = 2;
  auto run = [&](Qwen3Model& model, TrainOptimizer& opt, int64_t from, int64_t to) {
    SftObjective objective(1.0);
    for (int64_t step = from; step < to; ++step) {
      StatsRecorder stats;
      ASSERT_TRUE(RunTrainStep(model, opt, objective, data.Take(4, 0, step * 4, 5), step_options, step, &stats).ok());
    }
  };
  auto straight = LoadTiny(at::kBFloat16);
  TrainOptimizer straight_opt(straight->parameters(), Settings(1e-3), LrSchedule{});
  run(*straight, straight_opt, 0, 4);

  auto first = LoadTiny(at::kBFloat16);
  TrainOptimizer first_opt(first->parameters(), Settings(1e-3), LrSchedule{});
  run(*first, first_opt, 0, 2);
  TrainerState state;
  state.step = 2;
  ASSERT_TRUE(SaveTrainerCheckpoint(dir, *first, first_opt, state).ok());
  auto resumed = LoadTiny(at::kBFloat16);
  TrainOptimizer resumed_opt(resumed->parameters(), Settings(1e-3), LrSchedule{});
  TrainerState loaded;
  ASSERT_TRUE(LoadTrainerCheckpoint(dir + "/step-2", resumed.get(), &resumed_opt, &loaded).ok());
  for (size_t i = 0; i < resumed_opt.master_weights().size(); ++i) {
    ASSERT_TRUE(at::equal(resumed_opt.master_weights()[i], first_opt.master_weights()[i])) << "master " << i;
  }
  run(*resumed, resumed_opt, 2, 4);
  auto a = straight->parameters(), b = resumed->parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::equal(a[i], b[i])) << "parameter " << i;
    EXPECT_TRUE(at::equal(straight_opt.master_weights()[i], resumed_opt.master_weights()[i])) << "master " << i;
  }
}

// Weights published in float32 from a bf16 run are the fp32 masters, not the
// bf16 parameters widened; published in bf16 they are the masters rounded.
TEST(MasterWeights, Float32PublicationWritesTheMasters) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/publish_bf16";
  std::filesystem::remove_all(dir);
  SftData data = SftData::FromSequences(RandomSequences(12, 17));
  TrainStepOptions step_options;
  step_options.ppo_n_minibatches = 2;
  auto model = LoadTiny(at::kBFloat16);
  TrainOptimizer opt(model->parameters(), Settings(1e-3), LrSchedule{});
  SftObjective objective(1.0);
  for (int64_t step = 0; step < 3; ++step) {
    StatsRecorder stats;
    ASSERT_TRUE(RunTrainStep(*model, opt, objective, data.Take(4, 0, step * 4, 5), step_options, step, &stats).ok());
  }
  const ParallelState one = ParallelState::SingleProcess();
  const std::vector<at::Tensor> params = model->parameters();
  const std::vector<at::Tensor>& masters = opt.master_weights();
  ASSERT_EQ(masters.size(), params.size());
  for (const c10::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    WeightPublisherOptions options;
    options.weights_dir = dir + (dtype == at::kFloat ? "/float32" : "/bfloat16");
    options.dtype = dtype;
    WeightPublisher publisher(options);
    ASSERT_TRUE(publisher.Publish(*PublishedModel(model, FullModel(model, one), opt, dtype, one), 3).ok());
    auto published = LoadHfModel(VersionDir(options.weights_dir, 3));  // read back as fp32
    ASSERT_TRUE(published.ok()) << published.status();
    const std::vector<at::Tensor> got = (*published)->parameters();
    ASSERT_EQ(got.size(), params.size());
    int64_t finer_than_bf16 = 0;  // elements where the master is not its bf16 rounding
    for (size_t i = 0; i < got.size(); ++i) {
      const at::Tensor want = dtype == at::kFloat ? masters[i] : masters[i].to(at::kBFloat16).to(at::kFloat);
      EXPECT_TRUE(at::equal(got[i], want))
          << c10::toString(dtype) << " parameter " << i << ": max |published - expected| "
          << (got[i] - want).abs().max().item<double>();
      finer_than_bf16 += got[i].ne(params[i].to(at::kFloat)).sum().item<int64_t>();
    }
    if (dtype == at::kFloat) {
      EXPECT_GT(finer_than_bf16, 0) << "the float32 weights equal the bf16 ones widened";
    } else {
      EXPECT_EQ(finer_than_bf16, 0);
    }
  }
}

}  // namespace
}  // namespace moerl
