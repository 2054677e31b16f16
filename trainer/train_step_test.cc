// The training step without the GRPO math: micro-batching leaves the
// gradient unchanged, SFT learns, AdamW is torch.optim.AdamW's update, and a
// checkpoint resumes bit-identically.
#include "trainer/train_step.h"

#include <ATen/ops/allclose.h>
#include <ATen/ops/equal.h>
#include <torch/nn/utils/clip_grad.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "dataset/prompt.h"
#include "dataset/synthetic.h"
#include "gtest/gtest.h"
#include "trainer/checkpoint.h"
#include "trainer/sft.h"
#include "trainer/testing/trainer_fixture.h"

namespace moerl {
namespace {

std::shared_ptr<Qwen3Model> LoadTiny() { return LoadTestModel(); }

std::vector<TrainSequence> RandomSequences(int n, uint64_t seed) { return RandomTrainSequences(n, seed, 2); }

TrainStepOptions Options(int64_t minibatches, std::optional<int64_t> cap,
                         std::optional<double> aux = std::nullopt) {
  TrainStepOptions o;
  o.ppo_n_minibatches = minibatches;
  o.max_tokens_per_mb = cap;
  o.aux_loss_coef = aux;
  return o;
}

std::vector<at::Tensor> Grads(Qwen3Model& model) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : model.parameters()) out.push_back(p.grad().clone());
  return out;
}

TEST(TrainStep, MicroBatchingLeavesGradientsUnchanged) {
  auto model = LoadTiny();
  const std::vector<TrainSequence> seqs = RandomSequences(9, 3);
  IndexList all;
  for (int i = 0; i < 9; ++i) all.push_back(i);
  SftObjective objective(1.0);
  StatsRecorder stats;
  std::vector<at::Tensor> reference;
  // aux_loss_coef 0: the load-balancing loss is not additive over micro-batches.
  for (std::optional<int64_t> cap : {std::optional<int64_t>(), std::optional<int64_t>(20),
                                     std::optional<int64_t>(1)}) {
    model->zero_grad();
    const int64_t n_micro = AccumulateMinibatchGradients(
        *model, objective, seqs, all, Options(1, cap, 0.0), &stats);
    std::vector<at::Tensor> grads = Grads(*model);
    if (reference.empty()) {
      EXPECT_EQ(n_micro, 1);
      reference = grads;
      continue;
    }
    EXPECT_GT(n_micro, 2);
    double max_diff = 0;
    for (size_t i = 0; i < grads.size(); ++i) {
      max_diff = std::max(max_diff, (grads[i] - reference[i]).abs().max().item<double>());
    }
    EXPECT_LE(max_diff, 1e-6) << "max_tokens_per_mb " << *cap << ": max |grad diff| " << max_diff;
  }
}

// torch.optim.AdamW (single-tensor path), written out: the reference the
// LibTorch optimizer must match.
TEST(TrainOptimizer, MatchesTorchAdamWFormulaAndClips) {
  at::Tensor p = at::arange(6, at::kFloat).reshape({2, 3}).set_requires_grad(true);
  at::Tensor ref = p.detach().clone();
  OptimizerSettings o;
  o.lr = 0.1;
  o.weight_decay = 0.05;
  o.beta1 = 0.8;
  o.beta2 = 0.9;
  o.eps = 1e-6;
  o.gradient_clipping = 1.0;
  TrainOptimizer opt({p}, o, LrSchedule{});
  at::Tensor m = at::zeros_like(ref), v = at::zeros_like(ref);
  for (int step = 1; step <= 3; ++step) {
    opt.ZeroGrad();
    at::Tensor g = at::full({2, 3}, 0.3 * step) + at::arange(6, at::kFloat).reshape({2, 3});
    p.mutable_grad() = g.clone();
    const double norm = g.norm().item<double>();
    const OptimizerStepResult r = opt.Step(0);
    EXPECT_TRUE(r.updated);
    EXPECT_NEAR(r.grad_norm, norm, 1e-5);
    g = g * std::min(1.0, 1.0 / (norm + 1e-6));
    ref = ref * (1 - o.lr * o.weight_decay);
    m = m * o.beta1 + g * (1 - o.beta1);
    v = v * o.beta2 + g * g * (1 - o.beta2);
    const double bc1 = 1 - std::pow(o.beta1, step), bc2 = 1 - std::pow(o.beta2, step);
    ref = ref - (o.lr / bc1) * m / (v.sqrt() / std::sqrt(bc2) + o.eps);
    EXPECT_TRUE(at::allclose(p.detach(), ref, 1e-6, 1e-6)) << p << ref;
  }
  // A non-finite norm skips the update and clears the gradient.
  at::Tensor before = p.detach().clone();
  p.mutable_grad() = at::full({2, 3}, std::nan(""));
  const OptimizerStepResult r = opt.Step(0);
  EXPECT_FALSE(r.updated);
  EXPECT_FALSE(std::isfinite(r.grad_norm));
  EXPECT_TRUE(at::equal(p.detach(), before));
  EXPECT_FALSE(p.grad().defined());
}

std::vector<TrainSequence> SyntheticSft(int count) {
  SyntheticOptions options = SyntheticLevel(0);
  std::vector<TrainSequence> seqs;
  for (const SyntheticProblem& problem : GenerateSynthetic(options, count)) {
    TrainSequence s;
    // Byte tokens: ASCII text fits the tiny model's 128-token vocabulary.
    for (int32_t id : ByteTokenize(problem.question)) s.tokens.push_back(id);
    s.prompt_len = s.Length();
    const std::string target = SftTargetText(problem.answer, std::to_string(problem.gold));
    for (int32_t id : ByteTokenize(target)) s.tokens.push_back(id);
    seqs.push_back(std::move(s));
  }
  return seqs;
}

TEST(Sft, SyntheticProblemsLossFalls) {
  auto model = LoadTiny();
  OptimizerSettings o;
  o.lr = 3e-3;
  o.weight_decay = 0.0;
  TrainOptimizer opt(model->parameters(), o, LrSchedule{});
  SftData data = SftData::FromSequences(SyntheticSft(32));
  SftObjective objective(1.0);
  double first = 0, last = 0;
  for (int step = 0; step < 12; ++step) {
    StatsRecorder stats;
    const auto batch = data.Take(8, step / 4, (step % 4) * 8, 1);
    ASSERT_TRUE(RunTrainStep(*model, opt, objective, batch, Options(1, 2048), step, &stats).ok());
    const double nll = stats.Value("sft/nll");
    if (step == 0) first = nll;
    last = nll;
  }
  // (absl::StrFormat here also makes the test link absl's str_format, which
  // the checkpoint library's shared object needs at run time.)
  std::fprintf(stderr, "%s\n", absl::StrFormat("SFT nll: first %.4f last %.4f", first, last).c_str());
  EXPECT_LT(last, first * 0.7) << "first " << first << " last " << last;
}

TEST(SftTarget, EndsInBoxedGold) {
  EXPECT_EQ(SftTargetText("Tom has 3 + 4 = <<3+4=7>>7 apples now.\n#### 7", "7"),
            "Tom has 3 + 4 = <<3+4=7>>7 apples now.\nThe answer is \\boxed{7}.");
}

// 4 steps straight vs 2 steps, checkpoint, a fresh model and optimizer
// loaded from it, 2 more: the weights agree bit for bit (fp32).
TEST(Checkpoint, ResumeIsBitIdentical) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/ckpt";
  std::filesystem::remove_all(dir);
  SftData data = SftData::FromSequences(RandomSequences(16, 11));
  OptimizerSettings o;
  o.lr = 1e-2;
  auto run = [&](Qwen3Model& model, TrainOptimizer& opt, int64_t from, int64_t to) {
    SftObjective objective(1.0);
    for (int64_t step = from; step < to; ++step) {
      StatsRecorder stats;
      ASSERT_TRUE(RunTrainStep(model, opt, objective, data.Take(4, 0, step * 4, 5),
                               Options(2, std::nullopt), step, &stats)
                      .ok());
    }
  };
  auto straight = LoadTiny();
  TrainOptimizer straight_opt(straight->parameters(), o, LrSchedule{"linear", 0.25, 0.1, 4});
  run(*straight, straight_opt, 0, 4);

  auto first = LoadTiny();
  TrainOptimizer first_opt(first->parameters(), o, LrSchedule{"linear", 0.25, 0.1, 4});
  run(*first, first_opt, 0, 2);
  TrainerState state;
  state.step = 2;
  state.data_index = 8;
  ASSERT_TRUE(SaveTrainerCheckpoint(dir, *first, first_opt, state).ok());
  auto found = FindLatestCheckpoint(dir);
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, dir + "/step-2");

  auto resumed = LoadTiny();  // the initial weights: the checkpoint must replace them
  TrainOptimizer resumed_opt(resumed->parameters(), o, LrSchedule{"linear", 0.25, 0.1, 4});
  TrainerState loaded;
  ASSERT_TRUE(LoadTrainerCheckpoint(**found, resumed.get(), &resumed_opt, &loaded).ok());
  EXPECT_EQ(loaded.step, 2);
  EXPECT_EQ(loaded.data_index, 8);
  run(*resumed, resumed_opt, 2, 4);

  auto a = straight->named_parameters();
  auto b = resumed->named_parameters();
  int differing = 0;
  for (const auto& item : a) {
    if (!at::equal(item.value(), b[item.key()])) {
      ++differing;
      ADD_FAILURE() << item.key() << " differs by "
                    << (item.value() - b[item.key()]).abs().max().item<double>();
    }
  }
  EXPECT_EQ(differing, 0);
}

TEST(Checkpoint, DamagedCheckpointIsSkipped) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/ckpt_damaged";
  std::filesystem::remove_all(dir);
  auto model = LoadTiny();
  OptimizerSettings o;
  TrainOptimizer opt(model->parameters(), o, LrSchedule{});
  TrainerState state;
  state.step = 1;
  ASSERT_TRUE(SaveTrainerCheckpoint(dir, *model, opt, state).ok());
  state.step = 2;
  ASSERT_TRUE(SaveTrainerCheckpoint(dir, *model, opt, state).ok());
  std::filesystem::resize_file(dir + "/step-2/optimizer/exp_avg/model.safetensors", 10);
  auto found = FindLatestCheckpoint(dir);
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, dir + "/step-1");
  EXPECT_FALSE(FindLatestCheckpoint(dir + "/none")->has_value());
}

// The step-<N> folders under `dir`, sorted by N.
std::vector<int64_t> StepFolders(const std::string& dir) {
  std::vector<int64_t> steps;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0) steps.push_back(std::stoll(name.substr(5)));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

// Every entry of `dir` whose name starts with a dot.
std::vector<std::string> HiddenEntries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string()[0] == '.') out.push_back(e.path().filename().string());
  }
  return out;
}

TEST(Checkpoint, PruneKeepsTheNewestCompleteOnes) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/ckpt_prune";
  std::filesystem::remove_all(dir);
  auto model = LoadTiny();
  OptimizerSettings o;
  TrainOptimizer opt(model->parameters(), o, LrSchedule{});
  TrainerState state;
  for (int64_t step : {10, 20, 30, 40}) {
    state.step = step;
    ASSERT_TRUE(SaveTrainerCheckpoint(dir, *model, opt, state).ok());
  }
  auto removed = PruneCheckpoints(dir, 0);  // 0: keep all
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_TRUE(removed->empty());
  EXPECT_EQ(StepFolders(dir), (std::vector<int64_t>{10, 20, 30, 40}));

  removed = PruneCheckpoints(dir, 2);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, (std::vector<int64_t>{10, 20}));
  EXPECT_EQ(StepFolders(dir), (std::vector<int64_t>{30, 40}));
  EXPECT_TRUE(HiddenEntries(dir).empty());
  EXPECT_EQ(**FindLatestCheckpoint(dir), dir + "/step-40");

  removed = PruneCheckpoints(dir, 2);  // nothing more to do
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(removed->empty());
  EXPECT_EQ(StepFolders(dir), (std::vector<int64_t>{30, 40}));
  EXPECT_TRUE(PruneCheckpoints(dir + "/none", 2)->empty());
}

TEST(Checkpoint, PruneNeverRemovesTheOneRecoveryUses) {
  // The two newest are damaged: a resume would take step-20, so keep=1 must
  // keep it (and leave the damaged newer ones), removing only step-10.
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/ckpt_prune_damaged";
  std::filesystem::remove_all(dir);
  auto model = LoadTiny();
  OptimizerSettings o;
  TrainOptimizer opt(model->parameters(), o, LrSchedule{});
  TrainerState state;
  for (int64_t step : {10, 20, 30, 40}) {
    state.step = step;
    ASSERT_TRUE(SaveTrainerCheckpoint(dir, *model, opt, state).ok());
  }
  std::filesystem::resize_file(dir + "/step-40/optimizer/exp_avg/model.safetensors", 10);
  std::filesystem::remove(dir + "/step-30/manifest.pb");
  auto removed = PruneCheckpoints(dir, 1);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, (std::vector<int64_t>{10}));
  EXPECT_EQ(StepFolders(dir), (std::vector<int64_t>{20, 30, 40}));
  EXPECT_EQ(**FindLatestCheckpoint(dir), dir + "/step-20");
}

TEST(Checkpoint, AnInterruptedRemovalLeavesNothingToResumeFrom) {
  // A removal that crashed between its rename and its delete leaves a hidden
  // folder with a valid manifest: recovery never takes it, and the next
  // prune deletes it.
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/ckpt_prune_crash";
  std::filesystem::remove_all(dir);
  auto model = LoadTiny();
  OptimizerSettings o;
  TrainOptimizer opt(model->parameters(), o, LrSchedule{});
  TrainerState state;
  state.step = 10;
  ASSERT_TRUE(SaveTrainerCheckpoint(dir, *model, opt, state).ok());
  std::filesystem::rename(dir + "/step-10", dir + "/.step-10.removing-12345");
  auto found = FindLatestCheckpoint(dir);
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value()) << **found;

  state.step = 20;
  ASSERT_TRUE(SaveTrainerCheckpoint(dir, *model, opt, state).ok());
  auto removed = PruneCheckpoints(dir, 2);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_TRUE(removed->empty());
  EXPECT_TRUE(HiddenEntries(dir).empty());
  EXPECT_EQ(StepFolders(dir), (std::vector<int64_t>{20}));
}

}  // namespace
}  // namespace moerl
