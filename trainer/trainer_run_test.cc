// The trainer end to end on a run folder: batch files generated here, the
// tiny HF checkpoint of trainer/model/testdata/moe, weights/ + LATEST +
// probe.json + stats.jsonl checked, bit-identical resume through
// recover.mode=auto, and a bad batch file stopping the run by name.
#include "trainer/trainer_run.h"

#include <ATen/ops/equal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_format.h"
#include "common/proto/trajectory.pb.h"
#include "common/transport/record_io.h"
#include "common/weights_dir.h"
#include "dataset/synthetic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "trainer/model/hf_weights.h"
#include "trainer/grpo_objective.h"
#include "trainer/model/logprobs.h"
#include "trainer/testing/trainer_fixture.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

TrainerSettings Settings(const std::string& root, const std::string& trial,
                         const std::vector<std::string>& overrides = {}) {
  return TestTrainerSettings(root, trial, overrides);
}

TEST(TrainerRun, GrpoStepsPublishVersionsProbeAndStats) {
  const std::string root = FreshTestDir("e2e");
  const TrainerSettings s = Settings(root, "trial0");
  WriteTestBatches(s.BatchesDir(), 3, 2, 1);
  TrainerReport report;
  const absl::Status status = RunTrainer(s, nullptr, &report);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.steps_done, 3);
  EXPECT_TRUE(std::isfinite(report.last_loss));

  // weights/: LATEST names v3; keep_weight_versions=2 leaves v2 and v3.
  EXPECT_EQ(*ReadLatestVersion(s.WeightsDir()), 3);
  EXPECT_EQ(*ListVersions(s.WeightsDir()), (std::vector<int64_t>{2, 3}));
  // probe.json holds what the published weights give its sequences.
  const nlohmann::json probe = nlohmann::json::parse(ReadTestFile(VersionDir(s.WeightsDir(), 3) + "/probe.json"));
  EXPECT_EQ(probe["format_version"], 1);
  EXPECT_EQ(probe["version"], 3);
  auto published = LoadHfModel(VersionDir(s.WeightsDir(), 3));
  ASSERT_TRUE(published.ok()) << published.status();
  ASSERT_GE(probe["sequences"].size(), 1u);
  for (const auto& seq : probe["sequences"]) {
    const std::vector<int64_t> ids = seq["input_ids"];
    const std::vector<float> expected = seq["logprobs"];
    ASSERT_EQ(expected.size(), ids.size() - 1);
    auto got = ScoreSequences(**published, {ids}, {1}, 1.0);
    ASSERT_TRUE(got.ok());
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR((*got)[0][i], expected[i], 1e-5);
  }
  // The published weights differ from the initial ones (training happened).
  auto initial = LoadHfModel(kTestMoeDir);
  EXPECT_FALSE((*initial)->named_parameters()["model.norm.weight"].equal(
      (*published)->named_parameters()["model.norm.weight"]));

  // stats.jsonl: one line per step with AReaL's names.
  std::ifstream in(s.StatsPath());
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"], lines);
    for (const char* key :
         {"ppo_actor/task_reward/avg", "ppo_actor/advantages/avg", "ppo_actor/n_seqs",
          "ppo_actor/update/grad_norm", "ppo_actor/update/lr", "ppo_actor/update/update_successful",
          "ppo_actor/update/actor_loss/avg", "ppo_actor/update/clip_ratio/avg",
          "ppo_actor/update/importance_weight/avg", "ppo_actor/update/entropy/avg",
          "ppo_actor/update/version_stats/sample_staleness_theta_avg", "rollout/reward",
          "timeperf/train_step", "timeperf/update_weights", "timeperf/recompute_logp"}) {
      EXPECT_TRUE(j.contains(key)) << "step " << lines << " lacks " << key;
    }
    EXPECT_EQ(j["ppo_actor/n_seqs"], 8);
    EXPECT_EQ(j["ppo_actor/update/update_successful"], 1);
    EXPECT_EQ(j["ppo_actor/update/version_stats/sample_staleness_theta_avg"], lines);
    ++lines;
  }
  EXPECT_EQ(lines, 3);
  // The same statistics as TensorBoard events.
  int event_files = 0;
  for (const auto& e : std::filesystem::directory_iterator(s.RunDir() + "/tensorboard")) {
    event_files += e.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  }
  EXPECT_EQ(event_files, 1);
  // Checkpoints every step, the newest complete.
  EXPECT_TRUE(std::filesystem::exists(s.CheckpointsDir() + "/step-3/manifest.pb"));
}

TEST(TrainerRun, ResumeThroughRecoverIsBitIdentical) {
  const std::string root = FreshTestDir("resume");
  const TrainerSettings straight = Settings(root, "straight", {"+total_train_steps=4"});
  WriteTestBatches(straight.BatchesDir(), 4, 1, 2);
  TrainerReport report;
  ASSERT_TRUE(RunTrainer(straight, nullptr, &report).ok());
  ASSERT_EQ(report.steps_done, 4);

  const TrainerSettings first = Settings(root, "split", {"+total_train_steps=2"});
  std::filesystem::create_directories(first.BatchesDir());
  for (int b = 0; b < 4; ++b) {
    std::filesystem::copy_file(absl::StrFormat("%s/%06d.rec", straight.BatchesDir(), b),
                               absl::StrFormat("%s/%06d.rec", first.BatchesDir(), b));
  }
  ASSERT_TRUE(RunTrainer(first, nullptr, &report).ok());
  ASSERT_EQ(report.steps_done, 2);
  // A step the killed run took after its checkpoint: its line is replaced.
  std::ofstream(first.StatsPath(), std::ios::app) << "{\"step\": 2, \"discarded\": 1}\n";
  const TrainerSettings second = Settings(root, "split", {"+total_train_steps=4"});
  ASSERT_TRUE(RunTrainer(second, nullptr, &report).ok());
  EXPECT_EQ(report.first_step, 2);
  EXPECT_EQ(report.steps_done, 4);
  std::ifstream stats(second.StatsPath());
  std::vector<int> steps;
  for (std::string line; std::getline(stats, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_FALSE(j.contains("discarded")) << line;
    steps.push_back(j["step"].get<int>());
  }
  EXPECT_EQ(steps, (std::vector<int>{0, 1, 2, 3}));
  const std::string a = ReadTestFile(VersionDir(straight.WeightsDir(), 4) + "/model.safetensors");
  const std::string b = ReadTestFile(VersionDir(second.WeightsDir(), 4) + "/model.safetensors");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "weights after 4 steps differ between the straight and the resumed run";
}

TEST(TrainerRun, KlPenaltyAgainstReferenceModelRuns) {
  const std::string root = FreshTestDir("kl");
  const TrainerSettings s = Settings(root, "trial0", {"actor.kl_ctl=0.1", std::string("+ref.path=") + kTestMoeDir,
                                                      "+total_train_steps=1"});
  WriteTestBatches(s.BatchesDir(), 1, 1, 4);
  TrainerReport report;
  const absl::Status status = RunTrainer(s, nullptr, &report);
  ASSERT_TRUE(status.ok()) << status;
  std::ifstream in(s.StatsPath());
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const nlohmann::json j = nlohmann::json::parse(line);
  ASSERT_TRUE(j.contains("timeperf/ref_logp"));
  // At step 0 the reference is the policy that sampled: the per-token KL
  // rewards are ~0 but present.
  EXPECT_NEAR(j["ppo_actor/kl_rewards/avg"].get<double>(), 0.0, 1e-4);
}

// trainer.mode=sft from scratch: a model with the small tokenizer's
// vocabulary learns synthetic GSM8K-format problems.
TEST(TrainerRun, SftFromScratchOnSyntheticProblemsLowersTheLoss) {
  const std::string root = FreshTestDir("sft");
  const std::string model_dir = root + "/model";
  std::filesystem::create_directories(model_dir);
  nlohmann::json config = nlohmann::json::parse(ReadTestFile(std::string(kTestMoeDir) + "/config.json"));
  config["vocab_size"] = 4096;
  std::ofstream(model_dir + "/config.json") << config.dump();
  const std::string data = root + "/train.jsonl";
  {
    std::ofstream out(data);
    for (const SyntheticProblem& p : GenerateSynthetic(SyntheticLevel(0), 24)) out << SyntheticProblemJson(p) << "\n";
  }
  const TrainerSettings s = Settings(
      root, "trial0",
      {"actor.path=" + model_dir, "+actor.init_from_scratch=true", "+trainer.mode=sft",
       "+trainer.sft_dataset=" + data, "+trainer.sft_epochs=3", "+train_dataset.batch_size=8",
       "actor.optimizer.lr=3e-3", "actor.ppo_n_minibatches=1", "+evaluator.freq_steps=3",
       "+valid_dataset.path=" + data, "+trainer.eval_max_prompts=3", "+trainer.eval_n_samples=2",
       "+trainer.eval_max_new_tokens=12"});
  TrainerReport report;
  const absl::Status status = RunTrainer(s, nullptr, &report);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.steps_done, 9);  // 3 epochs x 3 batches of 8
  std::ifstream in(s.StatsPath());
  std::string line;
  std::vector<double> nll;
  int evals = 0;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    nll.push_back(j["sft/nll/avg"].get<double>());
    // Evaluation after steps 2, 5, 8 (every 3 steps), rewards in [0, 1].
    if (j.contains("eval-rollout/reward")) {
      ++evals;
      EXPECT_EQ(j["step"].get<int>() % 3, 2);
      EXPECT_GE(j["eval-rollout/reward"].get<double>(), 0.0);
      EXPECT_LE(j["eval-rollout/reward"].get<double>(), 1.0);
      EXPECT_GE(j["eval-rollout/greedy_accuracy"].get<double>(), 0.0);
      EXPECT_LE(j["eval-rollout/greedy_accuracy"].get<double>(), 1.0);
      EXPECT_TRUE(j.contains("timeperf/eval"));
    }
  }
  EXPECT_EQ(evals, 3);
  ASSERT_EQ(nll.size(), 9u);
  EXPECT_LT(nll.back(), nll.front() * 0.8) << "first " << nll.front() << " last " << nll.back();
  EXPECT_EQ(*ReadLatestVersion(s.WeightsDir()), 9);
}

TEST(TrainerRun, BadBatchFileStopsTheRunNamingIt) {
  const std::string root = FreshTestDir("bad");
  const TrainerSettings s = Settings(root, "trial0");
  WriteTestBatches(s.BatchesDir(), 2, 1, 3);
  // Damage batch 1: an output token outside the 128-token vocabulary.
  const std::string path = s.BatchesDir() + "/000001.rec";
  proto::TrajectoryBatch batch;
  {
    auto reader = RecordReader::Open(path);
    ASSERT_TRUE(reader.ok());
    ASSERT_TRUE(*(*reader)->NextMessage(&batch));
  }
  batch.mutable_trajectories(2)->set_output_tokens(1, 500);
  std::filesystem::remove(path);
  auto writer = RecordWriter::Create(path);
  ASSERT_TRUE((*writer)->WriteMessage(batch).ok());
  ASSERT_TRUE((*writer)->Close().ok());

  TrainerReport report;
  const absl::Status status = RunTrainer(s, nullptr, &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("000001.rec (record 0 at byte 16)"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("trajectories[2]"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("output_tokens[1] = 500"));
  EXPECT_EQ(report.steps_done, 1);
  EXPECT_EQ(*ReadLatestVersion(s.WeightsDir()), 1);
}

TEST(TrainerRun, StopBeforeAnyBatchPublishesVersionZero) {
  const std::string root = FreshTestDir("stop");
  const TrainerSettings s = Settings(root, "trial0", {"trainer.follow_batches=true"});
  TrainerReport report;
  int polls = 0;
  const absl::Status status = RunTrainer(s, [&] { return ++polls > 2; }, &report);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.steps_done, 0);
  EXPECT_EQ(*ReadLatestVersion(s.WeightsDir()), 0);
  EXPECT_TRUE(std::filesystem::exists(VersionDir(s.WeightsDir(), 0) + "/probe.json"));
  EXPECT_TRUE(std::filesystem::exists(VersionDir(s.WeightsDir(), 0) + "/config.json"));
}

}  // namespace
}  // namespace moerl

namespace moerl {
namespace {

// GRPO's loss through micro-batches of any size gives the minibatch's
// gradient (global token mean), to 1e-6.
TEST(GrpoObjective, MicroBatchingLeavesGradientsUnchanged) {
  const std::string root = FreshTestDir("grpo_micro");
  const TrainerSettings s = Settings(root, "trial0");
  WriteTestBatches(s.BatchesDir(), 1, 3, 7);
  proto::TrajectoryBatch batch;
  auto reader = RecordReader::Open(s.BatchesDir() + "/000000.rec");
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(*(*reader)->NextMessage(&batch));
  const std::vector<TrainSequence> seqs = FromTrajectoryBatch(batch);
  auto model = LoadHfModel(kTestMoeDir);
  ASSERT_TRUE(model.ok());
  GrpoObjective objective(GrpoOptionsFrom(s), 0);
  StatsRecorder stats;
  ASSERT_TRUE(objective.Prepare(**model, seqs, &stats).ok());
  IndexList all;
  for (size_t i = 0; i < seqs.size(); ++i) all.push_back(static_cast<int64_t>(i));
  std::vector<at::Tensor> reference;
  for (std::optional<int64_t> cap : {std::optional<int64_t>(), std::optional<int64_t>(40),
                                     std::optional<int64_t>(1)}) {
    (*model)->zero_grad();
    TrainStepOptions options;
    options.max_tokens_per_mb = cap;
    options.aux_loss_coef = 0.0;  // the load-balancing loss is not additive over micro-batches
    const int64_t n_micro = AccumulateMinibatchGradients(**model, objective, seqs, all, options, &stats);
    std::vector<at::Tensor> grads;
    for (const at::Tensor& p : (*model)->parameters()) grads.push_back(p.grad().clone());
    if (reference.empty()) {
      EXPECT_EQ(n_micro, 1);
      reference = grads;
      continue;
    }
    EXPECT_GT(n_micro, 2);
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < grads.size(); ++i) {
      max_diff = std::max(max_diff, (grads[i] - reference[i]).abs().max().item<double>());
      max_abs = std::max(max_abs, reference[i].abs().max().item<double>());
    }
    EXPECT_GT(max_abs, 1e-4);  // a real gradient
    EXPECT_LE(max_diff, 1e-6) << "max_tokens_per_mb " << *cap << ": max |grad diff| " << max_diff;
  }
}

}  // namespace
}  // namespace moerl

namespace moerl {
namespace {

// Router replay: feeding the trainer's own routes back gives exactly the
// normal log-probs and gradients; other routes change them.
TEST(RouterReplay, OwnRoutesGiveTheSameLossAndGradients) {
  const std::string root = FreshTestDir("replay");
  const TrainerSettings s = Settings(root, "trial0");
  WriteTestBatches(s.BatchesDir(), 1, 2, 9);
  proto::TrajectoryBatch batch;
  auto reader = RecordReader::Open(s.BatchesDir() + "/000000.rec");
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(*(*reader)->NextMessage(&batch));
  std::vector<TrainSequence> seqs = FromTrajectoryBatch(batch);
  auto model = LoadHfModel(kTestMoeDir);
  ASSERT_TRUE(model.ok());
  Qwen3Model& m = **model;
  IndexList all;
  for (size_t i = 0; i < seqs.size(); ++i) all.push_back(static_cast<int64_t>(i));

  m.zero_grad();
  PolicyOutput normal = PolicyForward(m, seqs, all, PolicyForwardOptions());
  normal.logp_n.sum().backward();
  std::vector<at::Tensor> normal_grads;
  for (const at::Tensor& p : m.parameters()) normal_grads.push_back(p.grad().clone());

  // The routes the normal forward chose, at each completion token's row.
  const int64_t layers = m.config().NumMoeLayers(), k = m.config().num_experts_per_tok;
  ASSERT_EQ(static_cast<int64_t>(normal.topk_ids_tk.size()), layers);
  int64_t row0 = 0;
  for (TrainSequence& q : seqs) {
    q.routed_layers = layers;
    q.routed_top_k = k;
    for (int64_t j = 0; j < q.OutputLen(); ++j) {
      for (int64_t l = 0; l < layers; ++l) {
        for (int64_t e = 0; e < k; ++e) {
          q.routed_experts.push_back(
              static_cast<int32_t>(normal.topk_ids_tk[l][row0 + q.prompt_len + j][e].item<int64_t>()));
        }
      }
    }
    row0 += q.Length();
  }
  ASSERT_TRUE(ValidateRoutes(m.config(), seqs).ok());
  PolicyForwardOptions replay;
  replay.replay_routes = true;
  m.zero_grad();
  PolicyOutput replayed = PolicyForward(m, seqs, all, replay);
  replayed.logp_n.sum().backward();
  EXPECT_TRUE(at::equal(replayed.logp_n, normal.logp_n));
  size_t i = 0;
  for (const at::Tensor& p : m.parameters()) {
    EXPECT_TRUE(at::equal(p.grad(), normal_grads[i])) << "parameter " << i;
    ++i;
  }

  // Other experts: different log-probs.
  for (TrainSequence& q : seqs) {
    for (int32_t& id : q.routed_experts) id = (id + 1) % static_cast<int32_t>(m.config().num_experts);
  }
  PolicyOutput shifted = PolicyForward(m, seqs, all, replay);
  EXPECT_GT((shifted.logp_n - normal.logp_n).abs().max().item<double>(), 1e-4);

  seqs[1].routed_experts[0] = 99;
  EXPECT_EQ(ValidateRoutes(m.config(), seqs).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moerl
