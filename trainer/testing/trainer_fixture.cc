#include "trainer/testing/trainer_fixture.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include "absl/strings/str_format.h"
#include "common/config/config_tree.h"
#include "common/proto/trajectory.pb.h"
#include "common/transport/record_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "trainer/model/hf_weights.h"
#include "trainer/model/logprobs.h"

namespace moerl {

std::shared_ptr<Qwen3Model> LoadTestModel(at::ScalarType dtype) {
  auto model = LoadHfModel(kTestMoeDir);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  (*model)->to(dtype);
  return *model;
}

std::vector<TrainSequence> RandomTrainSequences(int n, uint64_t seed, int min_completion) {
  std::mt19937_64 rng(seed);
  std::vector<TrainSequence> seqs;
  for (int i = 0; i < n; ++i) {
    TrainSequence s;
    const int p = 3 + static_cast<int>(rng() % 6), o = min_completion + static_cast<int>(rng() % 9);
    for (int t = 0; t < p + o; ++t) s.tokens.push_back(static_cast<int64_t>(rng() % 128));
    s.prompt_len = p;
    seqs.push_back(std::move(s));
  }
  return seqs;
}

std::string FreshTestDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string ReadTestFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteTestBatches(const std::string& dir, int n, int groups, uint64_t seed, bool routes) {
  std::filesystem::create_directories(dir);
  auto model = LoadHfModel(kTestMoeDir);
  ASSERT_TRUE(model.ok());
  std::mt19937_64 rng(seed);
  for (int b = 0; b < n; ++b) {
    proto::TrajectoryBatch batch;
    batch.set_format_version(1);
    batch.set_batch_index(b);
    batch.set_group_size(4);
    std::vector<std::vector<int64_t>> seqs;
    std::vector<int64_t> prompt_lens;
    for (int g = 0; g < groups; ++g) {
      std::vector<int64_t> prompt;
      for (int t = 0; t < 4 + static_cast<int>(rng() % 4); ++t) prompt.push_back(3 + rng() % 120);
      for (int s = 0; s < 4; ++s) {
        proto::Trajectory* tr = batch.add_trajectories();
        tr->set_format_version(2);
        tr->set_group_id(absl::StrFormat("b%d-g%d", b, g));
        tr->set_sample_index(s);
        std::vector<int64_t> seq = prompt;
        for (int64_t id : prompt) tr->add_prompt_tokens(static_cast<int32_t>(id));
        const int out = 3 + static_cast<int>(rng() % 6);
        for (int t = 0; t < out; ++t) {
          const int64_t id = 3 + rng() % 120;
          tr->add_output_tokens(static_cast<int32_t>(id));
          tr->add_output_versions(0);
          seq.push_back(id);
        }
        if (routes) {
          const ModelConfig& c = (*model)->config();
          tr->set_routed_experts_layers(static_cast<uint32_t>(c.NumMoeLayers()));
          tr->set_routed_experts_top_k(static_cast<uint32_t>(c.num_experts_per_tok));
          std::vector<int32_t> experts(static_cast<size_t>(c.num_experts));
          for (int t = 0; t < out * c.NumMoeLayers(); ++t) {
            std::iota(experts.begin(), experts.end(), 0);
            std::shuffle(experts.begin(), experts.end(), rng);
            for (int e = 0; e < c.num_experts_per_tok; ++e) tr->add_routed_experts(experts[e]);
          }
        }
        tr->set_finish_reason(s == 3 ? proto::FINISH_REASON_LENGTH : proto::FINISH_REASON_STOP);
        tr->set_reward(static_cast<float>(rng() % 2));
        tr->set_scored(true);
        seqs.push_back(seq);
        prompt_lens.push_back(static_cast<int64_t>(prompt.size()));
      }
    }
    auto logprobs = ScoreSequences(**model, seqs, prompt_lens, 1.0);
    ASSERT_TRUE(logprobs.ok());
    for (int i = 0; i < batch.trajectories_size(); ++i) {
      for (float lp : (*logprobs)[i]) batch.mutable_trajectories(i)->add_output_logprobs(lp);
    }
    auto writer = RecordWriter::Create(absl::StrFormat("%s/%06d.rec", dir, b));
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->WriteMessage(batch).ok());
    ASSERT_TRUE((*writer)->Close().ok());
  }
}

TrainerSettings TestTrainerSettings(const std::string& root, const std::string& trial,
                                    const std::vector<std::string>& overrides, int max_tokens_per_mb) {
  const std::string yaml = absl::StrFormat(R"(
experiment_name: trainer-test
trial_name: %s
cluster:
  fileroot: %s
actor:
  path: %s
  dtype: float32
  optimizer:
    lr: 1.0e-3
    warmup_steps_proportion: 0.0
  ppo_n_minibatches: 2
  eps_clip: 0.4
  reward_scaling: 10.0
  reward_bias: -0.5
  kl_ctl: 0.0
  recompute_logprob: true
  use_decoupled_loss: true
  rejection_sampling:
    metric: ratio
    upper: 5.0
  reward_norm:
    mean_level: group
    std_level: group
    group_size: 4
  adv_norm:
    mean_level: batch
    std_level: batch
  mb_spec:
    max_tokens_per_mb: %d
saver:
  freq_steps: 1
recover:
  mode: auto
trainer:
  follow_batches: false
  keep_weight_versions: 2
  threads: 1
)",
                                           trial, root, kTestMoeDir, max_tokens_per_mb);
  auto tree = ConfigTree::FromYamlText(yaml, "test.yaml");
  EXPECT_TRUE(tree.ok()) << tree.status();
  for (const std::string& o : overrides) EXPECT_TRUE(tree->ApplyOverride(o).ok()) << o;
  EXPECT_TRUE(tree->ResolveInterpolations().ok());
  TrainerSettings settings;
  const absl::Status s = settings.Load(*tree);
  EXPECT_TRUE(s.ok()) << s;
  return settings;
}

std::vector<StepNumbers> ReadStepNumbers(const std::string& stats_path) {
  std::vector<StepNumbers> out;
  std::ifstream in(stats_path);
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    out.push_back({j["ppo_actor/update/actor_loss/avg"].get<double>(), j["ppo_actor/update/grad_norm"].get<double>(),
                   j.value("comm/train_bytes_sent", -1.0)});
  }
  return out;
}

}  // namespace moerl
