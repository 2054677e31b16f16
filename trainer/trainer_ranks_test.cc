// The trainer on several ranks (threads meeting over Gloo, RunInProcessRanks)
// against the one-process trainer on the same batch files: per-step loss and
// gradient norm within 1e-5 relative, weights after 3 steps within 1e-5 per
// tensor (Frobenius; 1e-3 per element, see docs/parallel.md; tensor-parallel
// layouts: loss 5e-5, 2e-3 per element, see below), the published
// v3 of rank 0 a complete checkpoint that LoadHfModel reads, two parallel
// runs bit-identical, and a resume under the same layout bit-identical.
//
// One micro-batch per data shard (max_tokens_per_mb large): the routers' aux
// loss is then computed over the same tokens as in one process.
#include <ATen/ops/equal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/weights_dir.h"
#include "dataset/synthetic.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "trainer/model/hf_weights.h"
#include "trainer/model/logprobs.h"
#include "trainer/parallel/in_process_ranks.h"
#include "trainer/testing/trainer_fixture.h"
#include "trainer/trainer_run.h"

namespace moerl {
namespace {

constexpr int kSteps = 3;

// One micro-batch per data shard (see the file's header).
TrainerSettings Settings(const std::string& root, const std::string& trial,
                         const std::vector<std::string>& overrides = {}) {
  return TestTrainerSettings(root, trial, overrides, /*max_tokens_per_mb=*/100000);
}

double RelativeError(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-30); }

// One run of `allocation` (or one process when empty) in trial `trial` on
// the batches of `batches_from`.
void Train(const std::string& root, const std::string& trial, const std::string& allocation,
           const std::string& batches_from, std::vector<std::string> overrides = {}) {
  if (!allocation.empty()) overrides.push_back("+allocation_mode=sglang:d1+" + allocation);
  const TrainerSettings s = Settings(root, trial, overrides);
  if (!std::filesystem::exists(s.BatchesDir())) {
    std::filesystem::create_directories(s.BatchesDir());
    for (const auto& e : std::filesystem::directory_iterator(batches_from)) {
      std::filesystem::copy_file(e.path(), s.BatchesDir() + "/" + e.path().filename().string());
    }
  }
  if (allocation.empty()) {
    TrainerReport report;
    const absl::Status status = RunTrainer(s, ParallelState::SingleProcess(), nullptr, &report);
    ASSERT_TRUE(status.ok()) << status;
    return;
  }
  auto mode = ParseAllocationMode("sglang:d1+" + allocation);
  ASSERT_TRUE(mode.ok()) << mode.status();
  auto dims = TrainingDims(*mode);
  ASSERT_TRUE(dims.ok()) << dims.status();
  ParallelOptions options;
  options.comm.timeout = std::chrono::seconds(60);
  const absl::Status status = RunInProcessRanks(
      *dims,
      [&](const ParallelState& state) {
        TrainerReport report;
        absl::Status st = RunTrainer(s, state, nullptr, &report);
        if (!st.ok()) std::fprintf(stderr, "rank %d: %s\n", state.rank(), st.ToString().c_str());
        return st;
      },
      options);
  ASSERT_TRUE(status.ok()) << status;
}

std::map<std::string, at::Tensor> Weights(const std::string& dir) {
  auto model = LoadHfModel(dir);
  EXPECT_TRUE(model.ok()) << dir << ": " << model.status();
  std::map<std::string, at::Tensor> out;
  if (!model.ok()) return out;
  for (const auto& p : (*model)->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

class TrainerRanks : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainerRanks, MatchOneProcessAndRepeatBitForBit) {
  const std::string allocation = GetParam();
  std::string name = allocation;
  for (char& c : name) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  const std::string root = FreshTestDir(name);
  const std::string batches = root + "/batches";
  WriteTestBatches(batches, kSteps, 4, 11);
  Train(root, "one", "", batches);
  Train(root, "par", allocation, batches);
  Train(root, "again", allocation, batches);
  // The same layout stopped after 2 steps, then resumed from its checkpoint.
  Train(root, "split", allocation, batches, {"+total_train_steps=2"});
  Train(root, "split", allocation, batches, {"+total_train_steps=3"});
  if (HasFatalFailure()) return;

  const TrainerSettings one = Settings(root, "one"), par = Settings(root, "par");
  const std::vector<StepNumbers> a = ReadStepNumbers(one.StatsPath()), b = ReadStepNumbers(par.StatsPath());
  ASSERT_EQ(a.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(b.size(), static_cast<size_t>(kSteps)) << "rank 0 writes one stats line per step";
  // Tensor parallel sums the row-parallel matmuls (o_proj, down_proj, the
  // LM head's log-sum-exp) in another order than one process; the PPO loss
  // is a near-cancelling sum (|loss| ~ 4e-3 from terms ~ 1), so its relative
  // error shows fp32 rounding (~2e-5) while the gradient norm stays ~1e-6.
  // Adam then moves a few near-zero-gradient elements by ~1e-3 relative.
  // Four data shards sum the loss's shares in another order too: fsdp:d4's
  // step-0 loss (before any update) differs by 5e-11 absolute, 1.3e-5
  // relative.
  const bool tensor_parallel = allocation.find("t2") != std::string::npos;
  const bool four_shards = allocation.find("d4") != std::string::npos;
  const double loss_tol = tensor_parallel || four_shards ? 5e-5 : 1e-5, element_tol = tensor_parallel ? 2e-3 : 1e-3;
  double worst_loss = 0, worst_norm = 0;
  for (int i = 0; i < kSteps; ++i) {
    worst_loss = std::max(worst_loss, RelativeError(b[i].loss, a[i].loss));
    worst_norm = std::max(worst_norm, RelativeError(b[i].grad_norm, a[i].grad_norm));
    EXPECT_LE(RelativeError(b[i].loss, a[i].loss), loss_tol)
        << "step " << i << ": " << b[i].loss << " vs " << a[i].loss;
    EXPECT_LE(RelativeError(b[i].grad_norm, a[i].grad_norm), 1e-5)
        << "step " << i << ": " << b[i].grad_norm << " vs " << a[i].grad_norm;
    EXPECT_GT(b[i].comm_bytes, 0) << "step " << i << ": rank 0 logs the bytes it sent";
    EXPECT_EQ(a[i].comm_bytes, -1) << "one process logs no comm bytes";
  }
  const std::map<std::string, at::Tensor> wa = Weights(VersionDir(one.WeightsDir(), kSteps));
  const std::map<std::string, at::Tensor> wb = Weights(VersionDir(par.WeightsDir(), kSteps));
  ASSERT_EQ(wa.size(), wb.size());
  double worst_weight = 0, worst_element = 0;
  for (const auto& [key, t] : wa) {
    ASSERT_TRUE(wb.count(key)) << key;
    const at::Tensor d = (wb.at(key) - t).to(at::kDouble);
    const double norm = d.norm().item<double>() / std::max(t.to(at::kDouble).norm().item<double>(), 1e-30);
    const double element =
        (d.abs() / t.to(at::kDouble).abs().clamp_min(1e-3)).max().item<double>();
    worst_weight = std::max(worst_weight, norm);
    worst_element = std::max(worst_element, element);
    EXPECT_LE(norm, 1e-5) << key;
    EXPECT_LE(element, element_tol) << key;
  }
  std::printf("%s: loss %.3e, grad norm %.3e, weights after %d steps (norm) %.3e, (max element) %.3e\n",
              allocation.c_str(), worst_loss, worst_norm, kSteps, worst_weight, worst_element);

  // Determinism and resume: the safetensors bytes of v3.
  const std::string bytes = ReadTestFile(VersionDir(par.WeightsDir(), kSteps) + "/model.safetensors");
  ASSERT_FALSE(bytes.empty());
  EXPECT_TRUE(bytes == ReadTestFile(VersionDir(Settings(root, "again").WeightsDir(), kSteps) + "/model.safetensors"))
      << "two runs of " << allocation << " differ";
  EXPECT_TRUE(bytes == ReadTestFile(VersionDir(Settings(root, "split").WeightsDir(), kSteps) + "/model.safetensors"))
      << "a resumed run of " << allocation << " differs from a straight one";
}

INSTANTIATE_TEST_SUITE_P(Layouts, TrainerRanks,
                         ::testing::Values("megatron:d2", "megatron:(attn:d2|ffn:e2)", "megatron:d2e2",
                                           "fsdp:d2", "megatron:(attn:t2|ffn:e2)", "megatron:d1t2",
                                           "megatron:(attn:t2|ffn:t2)"));

// Sharded optimizer state (trainer/parallel/distributed_optimizer.h): the
// megatron layouts above run with it by default
// (actor.megatron.ddp.use_distributed_optimizer), fsdp layouts always; here
// fsdp over 4 data ranks and fsdp with tp 2 inside (d2t2).
INSTANTIATE_TEST_SUITE_P(ShardedOptimizer, TrainerRanks, ::testing::Values("fsdp:d4", "fsdp:d2t2"));

// The replicated optimizer (use_distributed_optimizer=false) still matches
// one process, and both checkpoint the same gathered moments.
TEST(TrainerRanksOptimizer, ReplicatedAndShardedStateBothMatchOneProcess) {
  const std::string root = FreshTestDir("replicated_optimizer");
  const std::string batches = root + "/batches";
  WriteTestBatches(batches, 2, 4, 19);
  const std::vector<std::string> replicated = {"+actor.megatron.ddp.use_distributed_optimizer=false",
                                               "+total_train_steps=2"};
  const std::vector<std::string> sharded = {"+total_train_steps=2"};
  Train(root, "one", "", batches, sharded);
  Train(root, "replicated", "megatron:d2", batches, replicated);
  Train(root, "sharded", "megatron:d2", batches, sharded);
  if (HasFatalFailure()) return;
  const std::vector<StepNumbers> one = ReadStepNumbers(Settings(root, "one", sharded).StatsPath());
  ASSERT_EQ(one.size(), 2u);
  for (const auto& [trial, overrides] :
       {std::pair<std::string, std::vector<std::string>>{"replicated", replicated}, {"sharded", sharded}}) {
    const TrainerSettings s = Settings(root, trial, overrides);
    const std::vector<StepNumbers> got = ReadStepNumbers(s.StatsPath());
    ASSERT_EQ(got.size(), 2u) << trial;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_LE(RelativeError(got[i].loss, one[i].loss), 1e-5) << trial << " step " << i;
      EXPECT_LE(RelativeError(got[i].grad_norm, one[i].grad_norm), 1e-5) << trial << " step " << i;
    }
  }
  // Both checkpoint the same gathered state: the sharded optimizer's
  // all-gather of its shards gives the replicated one's moments.
  for (const char* moment : {"exp_avg", "exp_avg_sq"}) {
    const std::string file = absl::StrCat("/step-2/optimizer/", moment, "/model.safetensors");
    const std::string replicated_bytes = ReadTestFile(Settings(root, "replicated", replicated).CheckpointsDir() + file);
    ASSERT_FALSE(replicated_bytes.empty()) << file;
    EXPECT_TRUE(replicated_bytes == ReadTestFile(Settings(root, "sharded", sharded).CheckpointsDir() + file))
        << file << ": the sharded optimizer's gathered state differs from the replicated one's";
  }
}

// Context parallel (trainer/parallel/context_parallel.h): alone and with
// expert parallel on 2 ranks, with data + expert and tensor + expert
// parallel on 4.
INSTANTIATE_TEST_SUITE_P(ContextParallel, TrainerRanks,
                         ::testing::Values("megatron:d1c2", "megatron:(attn:c2|ffn:e2)",
                                           "megatron:(attn:d2c2|ffn:d2e2)", "megatron:(attn:t2c2|ffn:e4)"));

// One group per batch and two minibatches: the group is split by sequence
// (no shard idles) under EP; under plain DP, micro-batches of 8 tokens give
// the shards unequal counts and the shorter one pads with empty forwards
// (the routers' statistics are all-reduced in each forward).
class TrainerRanksUneven : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainerRanksUneven, MatchOneProcess) {
  const bool dp_only = GetParam() == "megatron:d2";
  std::string name = GetParam();
  for (char& c : name) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  const std::string root = FreshTestDir("uneven" + name);
  const std::string batches = root + "/batches";
  WriteTestBatches(batches, 2, 1, 5);
  const std::vector<std::string> mb =
      dp_only ? std::vector<std::string>{"actor.mb_spec.max_tokens_per_mb=8"} : std::vector<std::string>{};
  Train(root, "one", "", batches, mb);
  Train(root, "par", GetParam(), batches, mb);
  if (HasFatalFailure()) return;
  const std::vector<StepNumbers> a = ReadStepNumbers(Settings(root, "one").StatsPath());
  const std::vector<StepNumbers> b = ReadStepNumbers(Settings(root, "par").StatsPath());
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  // With several micro-batches the routers' losses cover different token
  // sets than in one process (each forward's batch is the union over the
  // shards), so the plain-DP case is compared more loosely.
  // (actor_loss/avg averages per-micro-batch values, so it is only checked
  // to be finite there).
  const double tol = dp_only ? 1e-2 : 1e-5;
  for (size_t i = 0; i < a.size(); ++i) {
    if (dp_only) {
      EXPECT_TRUE(std::isfinite(b[i].loss)) << "step " << i;
    } else {
      EXPECT_LE(RelativeError(b[i].loss, a[i].loss), tol) << "step " << i;
    }
    EXPECT_LE(RelativeError(b[i].grad_norm, a[i].grad_norm), tol) << "step " << i;
    std::printf("%s step %zu: loss %.3e, grad norm %.3e\n", GetParam().c_str(), i,
                RelativeError(b[i].loss, a[i].loss), RelativeError(b[i].grad_norm, a[i].grad_norm));
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, TrainerRanksUneven,
                         ::testing::Values("megatron:d2", "megatron:(attn:d2|ffn:e2)"));

// Evaluation every step under expert parallelism: every rank takes part in
// gathering the experts, rank 0 evaluates, the others wait in the next
// step's collectives. The held-out figures equal one process's (same
// weights to 1e-5, same sampling seed). A model with the small tokenizer's
// vocabulary, from scratch; the batches' token ids are below 128.
TEST(TrainerRanksEval, EvaluatesEveryStepLikeOneProcess) {
  const std::string root = FreshTestDir("eval");
  const std::string model_dir = root + "/model";
  std::filesystem::create_directories(model_dir);
  nlohmann::json config = nlohmann::json::parse(ReadTestFile(std::string(kTestMoeDir) + "/config.json"));
  config["vocab_size"] = 4096;
  std::ofstream(model_dir + "/config.json") << config.dump();
  const std::string data = root + "/test.jsonl";
  {
    std::ofstream out(data);
    for (const SyntheticProblem& p : GenerateSynthetic(SyntheticLevel(0), 3)) out << SyntheticProblemJson(p) << "\n";
  }
  const std::string batches = root + "/batches";
  WriteTestBatches(batches, 2, 2, 7);
  const std::vector<std::string> overrides = {
      "actor.path=" + model_dir,        "+actor.init_from_scratch=true",   "+evaluator.freq_steps=1",
      "+valid_dataset.path=" + data,    "+trainer.eval_max_prompts=3",     "+trainer.eval_n_samples=2",
      "+trainer.eval_max_new_tokens=8", "+total_train_steps=2"};
  Train(root, "one", "", batches, overrides);
  Train(root, "par", "megatron:(attn:d2|ffn:e2)", batches, overrides);
  if (HasFatalFailure()) return;
  auto evals = [&](const std::string& trial) {
    std::vector<std::pair<double, double>> out;
    std::ifstream in(Settings(root, trial, overrides).StatsPath());
    std::string line;
    while (std::getline(in, line)) {
      const nlohmann::json j = nlohmann::json::parse(line);
      EXPECT_TRUE(j.contains("eval-rollout/reward")) << trial << ": " << line;
      if (!j.contains("eval-rollout/reward")) continue;
      out.emplace_back(j["eval-rollout/reward"].get<double>(), j["eval-rollout/greedy_accuracy"].get<double>());
    }
    return out;
  };
  const auto a = evals("one"), b = evals("par");
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i].first, a[i].first) << "eval-rollout/reward after step " << i;
    EXPECT_EQ(b[i].second, a[i].second) << "eval-rollout/greedy_accuracy after step " << i;
  }
}

// actor.dtype=bfloat16 with trainer.weights_dtype=float32 under tensor and
// expert parallelism: the published weights are the fp32 masters gathered
// from every rank's slices and experts. Their bf16 rounding is exactly the
// checkpoint's bf16 weights (gathered from the parameters), and some
// elements are finer than bf16.
TEST(TrainerRanksMixedPrecision, Float32PublicationGathersTheMasters) {
  const std::string root = FreshTestDir("bf16_masters");
  const std::string batches = root + "/batches";
  WriteTestBatches(batches, 2, 4, 13);
  const std::vector<std::string> overrides = {"actor.dtype=bfloat16", "+trainer.weights_dtype=float32"};
  Train(root, "par", "megatron:(attn:t2|ffn:e2)", batches, overrides);
  if (HasFatalFailure()) return;
  const TrainerSettings s = Settings(root, "par", overrides);
  const std::map<std::string, at::Tensor> published = Weights(VersionDir(s.WeightsDir(), 2));
  const std::map<std::string, at::Tensor> bf16 = Weights(s.CheckpointsDir() + "/step-2/weights");
  ASSERT_EQ(published.size(), bf16.size());
  int64_t finer = 0;
  for (const auto& [key, t] : published) {
    ASSERT_TRUE(bf16.count(key)) << key;
    EXPECT_TRUE(at::equal(t.to(at::kBFloat16).to(at::kFloat), bf16.at(key))) << key;
    finer += t.ne(bf16.at(key)).sum().item<int64_t>();
  }
  EXPECT_GT(finer, 0) << "the float32 weights equal the bf16 ones widened";
}

// A rank that leaves (here: stops before its first step) makes the other
// fail with Unavailable within the collective timeout, not hang.
TEST(TrainerRanksErrors, ALostRankFailsTheOthersWithinTheTimeout) {
  const std::string root = FreshTestDir("lost");
  const TrainerSettings s = Settings(root, "lost", {"+allocation_mode=sglang:d1+megatron:(attn:d2|ffn:e2)"});
  WriteTestBatches(s.BatchesDir(), 1, 2, 6);
  auto mode = ParseAllocationMode("sglang:d1+megatron:(attn:d2|ffn:e2)");
  ASSERT_TRUE(mode.ok());
  ParallelOptions options;
  options.comm.timeout = std::chrono::seconds(5);
  std::vector<absl::Status> statuses(2);
  const auto start = std::chrono::steady_clock::now();
  (void)RunInProcessRanks(
      *TrainingDims(*mode),
      [&](const ParallelState& state) {
        TrainerReport report;
        statuses[state.rank()] =
            RunTrainer(s, state, [&] { return state.rank() == 1; }, &report);
        return statuses[state.rank()];
      },
      options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(statuses[1].ok()) << statuses[1];
  EXPECT_EQ(statuses[0].code(), absl::StatusCode::kUnavailable) << statuses[0];
  EXPECT_NE(statuses[0].message().find("rank 0"), absl::string_view::npos) << statuses[0];
  EXPECT_LT(seconds, 50) << "the collective timeout is 5 s";
  std::printf("lost rank: %s (after %.1f s)\n", statuses[0].ToString().c_str(), seconds);
}

// Router replay under tensor + sequence parallelism: each shard replays the
// routes of its own rows. Batches carry random routes (rarely the router's
// own choice), so replay changes the step: the one-process run with replay
// differs from one without, and the t2 run with replay matches the
// one-process run with replay.
TEST(TrainerRanksReplay, TensorParallelReplaysTheRoutesOfItsShard) {
  const std::string root = FreshTestDir("replay_tp");
  const std::string batches = root + "/batches";
  WriteTestBatches(batches, 2, 4, 17, /*routes=*/true);
  const std::vector<std::string> replay = {"+actor.router_replay=true"};
  Train(root, "free", "", batches);
  Train(root, "one", "", batches, replay);
  Train(root, "par", "megatron:d1t2", batches, replay);
  if (HasFatalFailure()) return;
  const std::vector<StepNumbers> free = ReadStepNumbers(Settings(root, "free").StatsPath());
  const std::vector<StepNumbers> one = ReadStepNumbers(Settings(root, "one").StatsPath());
  const std::vector<StepNumbers> par = ReadStepNumbers(Settings(root, "par").StatsPath());
  ASSERT_EQ(one.size(), 2u);
  ASSERT_EQ(par.size(), 2u);
  ASSERT_EQ(free.size(), 2u);
  EXPECT_GT(RelativeError(one[0].grad_norm, free[0].grad_norm), 1e-3) << "replaying the routes changed nothing";
  for (size_t i = 0; i < one.size(); ++i) {
    // The PPO loss nearly cancels (|loss| ~ 1e-3 from terms ~ 1): the
    // layouts' tensor-parallel tolerance plus fp32 rounding of the terms
    // (1e-7); the gradient norm carries the sharp check.
    EXPECT_LE(std::abs(par[i].loss - one[i].loss), 5e-5 * std::abs(one[i].loss) + 1e-7) << "step " << i << ": " << par[i].loss << " vs " << one[i].loss;
    EXPECT_LE(RelativeError(par[i].grad_norm, one[i].grad_norm), 1e-5) << "step " << i;
    std::printf("replay d1t2 step %zu: loss %.6g vs %.6g (abs %.3e), grad norm %.3e (replay vs none: grad norm %.3e)\n",
                i, par[i].loss, one[i].loss, std::abs(par[i].loss - one[i].loss),
                RelativeError(par[i].grad_norm, one[i].grad_norm), RelativeError(one[i].grad_norm, free[i].grad_norm));
  }
}

// Pipeline parallelism (with tp and ep inside the stages): the tiny MoE
// with 4 layers (2 per stage; the fixture's has 3), from scratch, against
// one process on the same batches: the same checks as TrainerRanks. Under
// p2 and (attn:d1p2t2|ffn:d1p2e2) micro-batches of 64 tokens (several per
// minibatch, so 1F1B overlaps; one data shard, so the same micro-batches as
// one process); d2p2 with one micro-batch per shard (see the file's header).
// Prepare's proximal log-probs run as a forward-only pipeline pass.
//
// Tensor parallel on this model and these micro-batches is further from one
// process than TrainerRanks' tp layouts (the same tp layout without pp:
// loss ~5e-5, weights 7.5e-5 in norm, 5.2e-3 per element, from the
// row-parallel sums' order and Adam's amplification of near-zero
// gradients), so the tp + pp layout is held to the tp tolerances below and,
// sharply, to bit-identity with that tp layout without pp: the pipeline
// adds no error of its own.
struct PipelineCase {
  std::string allocation;
  std::string same_without_pp;  // a layout whose v3 must be bit-identical, or ""
};
void PrintTo(const PipelineCase& c, std::ostream* os) { *os << c.allocation; }

class TrainerRanksPipeline : public ::testing::TestWithParam<PipelineCase> {};

TEST_P(TrainerRanksPipeline, MatchOneProcessAndRepeatBitForBit) {
  const std::string allocation = GetParam().allocation;
  std::string name = allocation;
  for (char& c : name) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  const std::string root = FreshTestDir("pp" + name);
  const std::string model_dir = root + "/model";
  std::filesystem::create_directories(model_dir);
  nlohmann::json config = nlohmann::json::parse(ReadTestFile(std::string(kTestMoeDir) + "/config.json"));
  config["num_hidden_layers"] = 4;
  std::ofstream(model_dir + "/config.json") << config.dump();
  const std::string batches = root + "/batches";
  WriteTestBatches(batches, kSteps, 4, 23);
  std::vector<std::string> overrides = {"actor.path=" + model_dir, "+actor.init_from_scratch=true"};
  const bool one_shard = allocation.find("d2") == std::string::npos;
  if (one_shard) overrides.push_back("actor.mb_spec.max_tokens_per_mb=64");
  Train(root, "one", "", batches, overrides);
  Train(root, "par", allocation, batches, overrides);
  Train(root, "again", allocation, batches, overrides);
  std::vector<std::string> two = overrides, three = overrides;
  two.push_back("+total_train_steps=2");
  three.push_back("+total_train_steps=3");
  Train(root, "split", allocation, batches, two);
  Train(root, "split", allocation, batches, three);
  if (!GetParam().same_without_pp.empty()) Train(root, "nopp", GetParam().same_without_pp, batches, overrides);
  if (HasFatalFailure()) return;

  const TrainerSettings one = Settings(root, "one", overrides), par = Settings(root, "par", overrides);
  const std::vector<StepNumbers> a = ReadStepNumbers(one.StatsPath()), b = ReadStepNumbers(par.StatsPath());
  ASSERT_EQ(a.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(b.size(), static_cast<size_t>(kSteps)) << "rank 0 writes one stats line per step";
  // Micro-batches per minibatch as in one process (stats merged over pp).
  const auto micro_batches = [](const std::string& path) {
    std::vector<double> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line)["ppo_actor/update/num_micro_batches"].get<double>());
    return out;
  };
  // Every statistic of the one-process lines is in rank 0's (the last
  // stage's statistics merged over pp); with the same micro-batches and no
  // tp, each value matches (timings aside).
  {
    std::ifstream in_one(one.StatsPath()), in_par(par.StatsPath());
    std::string line_one, line_par;
    double worst_stat = 0;
    while (std::getline(in_one, line_one) && std::getline(in_par, line_par)) {
      const nlohmann::json j1 = nlohmann::json::parse(line_one), j2 = nlohmann::json::parse(line_par);
      for (const auto& [key, value] : j1.items()) {
        if (key.rfind("timeperf/", 0) == 0 || key == "wall_time") continue;
        ASSERT_TRUE(j2.contains(key)) << key << " is missing from rank 0's stats.jsonl";
        if (!value.is_number() || !j2[key].is_number() || allocation != "megatron:d1p2") continue;
        const double a1 = value.get<double>(), a2 = j2[key].get<double>();
        const double err = std::abs(a2 - a1) / std::max(std::abs(a1), 1e-6);
        worst_stat = std::max(worst_stat, err);
        EXPECT_LE(err, 1e-5) << key << ": " << a2 << " vs " << a1;
      }
    }
    std::printf("%s: worst statistic %.3e\n", allocation.c_str(), worst_stat);
  }
  if (one_shard) {
    EXPECT_EQ(micro_batches(one.StatsPath()), micro_batches(par.StatsPath()));
    EXPECT_GT(micro_batches(par.StatsPath())[0], 1.0) << "1F1B needs several micro-batches to overlap";
  }
  // Tensor parallel: see above.
  const bool tensor_parallel = allocation.find("t2") != std::string::npos;
  const double loss_tol = tensor_parallel ? 1e-4 : 1e-5, element_tol = tensor_parallel ? 1e-2 : 1e-3;
  const double weight_tol = tensor_parallel ? 1e-4 : 1e-5;
  double worst_loss = 0, worst_norm = 0;
  for (int i = 0; i < kSteps; ++i) {
    worst_loss = std::max(worst_loss, RelativeError(b[i].loss, a[i].loss));
    worst_norm = std::max(worst_norm, RelativeError(b[i].grad_norm, a[i].grad_norm));
    EXPECT_LE(RelativeError(b[i].loss, a[i].loss), loss_tol) << "step " << i << ": " << b[i].loss << " vs " << a[i].loss;
    EXPECT_LE(RelativeError(b[i].grad_norm, a[i].grad_norm), 1e-5)
        << "step " << i << ": " << b[i].grad_norm << " vs " << a[i].grad_norm;
  }
  const std::map<std::string, at::Tensor> wa = Weights(VersionDir(one.WeightsDir(), kSteps));
  const std::map<std::string, at::Tensor> wb = Weights(VersionDir(par.WeightsDir(), kSteps));
  ASSERT_EQ(wa.size(), wb.size()) << "the published v" << kSteps << " holds every layer";
  double worst_weight = 0, worst_element = 0;
  for (const auto& [key, t] : wa) {
    ASSERT_TRUE(wb.count(key)) << key;
    const at::Tensor d = (wb.at(key) - t).to(at::kDouble);
    const double norm = d.norm().item<double>() / std::max(t.to(at::kDouble).norm().item<double>(), 1e-30);
    const double element = (d.abs() / t.to(at::kDouble).abs().clamp_min(1e-3)).max().item<double>();
    worst_weight = std::max(worst_weight, norm);
    worst_element = std::max(worst_element, element);
    EXPECT_LE(norm, weight_tol) << key;
    EXPECT_LE(element, element_tol) << key;
  }
  std::printf("%s: loss %.3e, grad norm %.3e, weights after %d steps (norm) %.3e, (max element) %.3e\n",
              allocation.c_str(), worst_loss, worst_norm, kSteps, worst_weight, worst_element);
  const std::string bytes = ReadTestFile(VersionDir(par.WeightsDir(), kSteps) + "/model.safetensors");
  ASSERT_FALSE(bytes.empty());
  EXPECT_TRUE(bytes == ReadTestFile(VersionDir(Settings(root, "again", overrides).WeightsDir(), kSteps) +
                                    "/model.safetensors"))
      << "two runs of " << allocation << " differ";
  EXPECT_TRUE(bytes == ReadTestFile(VersionDir(Settings(root, "split", overrides).WeightsDir(), kSteps) +
                                    "/model.safetensors"))
      << "a resumed run of " << allocation << " differs from a straight one";
  if (!GetParam().same_without_pp.empty()) {
    EXPECT_TRUE(bytes == ReadTestFile(VersionDir(Settings(root, "nopp", overrides).WeightsDir(), kSteps) +
                                      "/model.safetensors"))
        << allocation << " differs from " << GetParam().same_without_pp;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, TrainerRanksPipeline,
                         ::testing::Values(PipelineCase{"megatron:d1p2", ""}, PipelineCase{"megatron:d2p2", ""},
                                           PipelineCase{"megatron:(attn:d1p2t2|ffn:d1p2e2)",
                                                        "megatron:(attn:t2|ffn:e2)"}),
                         [](const ::testing::TestParamInfo<PipelineCase>& info) {
                           std::string name = info.param.allocation.substr(std::string("megatron:").size());
                           for (char& c : name) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

// Under pp every data shard must run the same number of micro-batches (a
// pipeline has no empty forward): three groups in one minibatch (two on one
// shard, one on the other) in micro-batches of 8 tokens (one sequence each)
// give the shards 8 and 4 micro-batches, and every rank stops with
// FailedPrecondition naming the key, before any optimizer step.
TEST(TrainerRanksErrors, PipelineWithUnevenMicroBatchCountsFailsClearly) {
  const std::string root = FreshTestDir("pp_uneven");
  const std::string model_dir = root + "/model";
  std::filesystem::create_directories(model_dir);
  nlohmann::json config = nlohmann::json::parse(ReadTestFile(std::string(kTestMoeDir) + "/config.json"));
  config["num_hidden_layers"] = 4;
  std::ofstream(model_dir + "/config.json") << config.dump();
  const TrainerSettings s =
      Settings(root, "pp", {"actor.path=" + model_dir, "+actor.init_from_scratch=true",
                            "actor.mb_spec.max_tokens_per_mb=8", "actor.ppo_n_minibatches=1",
                            "+allocation_mode=sglang:d1+megatron:d2p2"});
  WriteTestBatches(s.BatchesDir(), 1, 3, 5);
  auto mode = ParseAllocationMode("sglang:d1+megatron:d2p2");
  ASSERT_TRUE(mode.ok());
  ParallelOptions options;
  options.comm.timeout = std::chrono::seconds(60);
  std::vector<absl::Status> statuses(4);
  (void)RunInProcessRanks(
      *TrainingDims(*mode),
      [&](const ParallelState& state) {
        TrainerReport report;
        statuses[state.rank()] = RunTrainer(s, state, nullptr, &report);
        return statuses[state.rank()];
      },
      options);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(statuses[r].code(), absl::StatusCode::kFailedPrecondition) << "rank " << r << ": " << statuses[r];
    EXPECT_NE(statuses[r].message().find("actor.mb_spec.max_tokens_per_mb"), absl::string_view::npos) << statuses[r];
  }
  std::printf("uneven micro-batches under d2p2: %s\n", statuses[0].ToString().c_str());
}

}  // namespace
}  // namespace moerl
