// For grpo_step_oracle_test.sh: writes one GRPO batch file (2 groups of 4,
// behaviour log-probs from the initial weights) into <out>/oracle/t0/batches, its
// content as <out>/batch.json, and runs one trainer step on it (fp32,
// reward_norm group, no adv_norm, PPO clip without the decoupled loss); the
// Python oracle then repeats the step with transformers + torch.optim.AdamW
// and compares with <out>/oracle/t0/weights/v1.
//   grpo_step_fixture <out> <model dir>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_format.h"
#include "common/config/config_tree.h"
#include "common/proto/trajectory.pb.h"
#include "common/transport/record_io.h"
#include "nlohmann/json.hpp"
#include "trainer/model/hf_weights.h"
#include "trainer/model/logprobs.h"
#include "trainer/trainer_run.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const std::string out = argv[1], model_dir = argv[2];
  const std::string run = out + "/oracle/t0";  // <fileroot>/<experiment>/<trial>
  auto model = moerl::LoadHfModel(model_dir);
  if (!model.ok()) return 1;
  std::mt19937_64 rng(5);
  moerl::proto::TrajectoryBatch batch;
  batch.set_format_version(1);
  batch.set_group_size(4);
  std::vector<std::vector<int64_t>> seqs;
  std::vector<int64_t> prompt_lens;
  nlohmann::json j;
  for (int g = 0; g < 2; ++g) {
    std::vector<int64_t> prompt;
    for (int t = 0; t < 5 + g; ++t) prompt.push_back(3 + rng() % 120);
    for (int s = 0; s < 4; ++s) {
      auto* tr = batch.add_trajectories();
      tr->set_format_version(2);
      tr->set_group_id(absl::StrFormat("g%d", g));
      tr->set_sample_index(s);
      std::vector<int64_t> seq = prompt;
      for (int64_t id : prompt) tr->add_prompt_tokens(static_cast<int32_t>(id));
      for (int t = 0; t < 3 + s; ++t) {
        const int64_t id = 3 + rng() % 120;
        tr->add_output_tokens(static_cast<int32_t>(id));
        tr->add_output_versions(0);
        seq.push_back(id);
      }
      tr->set_finish_reason(moerl::proto::FINISH_REASON_STOP);
      tr->set_reward(static_cast<float>((s + g) % 2));
      tr->set_scored(true);
      seqs.push_back(seq);
      prompt_lens.push_back(static_cast<int64_t>(prompt.size()));
    }
  }
  auto logprobs = moerl::ScoreSequences(**model, seqs, prompt_lens, 1.0);
  if (!logprobs.ok()) return 1;
  for (int i = 0; i < batch.trajectories_size(); ++i) {
    // Perturbed so that the PPO ratio is not 1 (some tokens clip).
    std::vector<float> behave;
    for (float lp : (*logprobs)[i]) behave.push_back(lp + 0.3f * static_cast<float>(static_cast<int>(rng() % 5) - 2));
    for (float lp : behave) batch.mutable_trajectories(i)->add_output_logprobs(std::min(lp, 0.0f));
    j["seqs"].push_back({{"tokens", seqs[i]},
                         {"prompt_len", prompt_lens[i]},
                         {"behave", batch.trajectories(i).output_logprobs()},
                         {"reward", batch.trajectories(i).reward()}});
  }
  std::filesystem::create_directories(run + "/batches");
  auto writer = moerl::RecordWriter::Create(run + "/batches/000000.rec");
  if (!writer.ok() || !(*writer)->WriteMessage(batch).ok() || !(*writer)->Close().ok()) return 1;
  std::ofstream(out + "/batch.json") << j.dump();

  const std::string yaml = absl::StrFormat(R"(
experiment_name: oracle
trial_name: t0
cluster: {fileroot: %s}
actor:
  path: %s
  dtype: float32
  # eps 1e-2 and no clipping: the update depends on the gradient's scale
  # (with a tiny eps Adam's first step is ~lr * sign(g), blind to it).
  optimizer: {lr: 1.0e-3, weight_decay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1.0e-2,
              gradient_clipping: 0.0, warmup_steps_proportion: 0.0}
  ppo_n_minibatches: 1
  eps_clip: 0.2
  reward_scaling: 10.0
  reward_bias: -0.5
  reward_norm: {mean_level: group, std_level: group, group_size: 4}
trainer: {follow_batches: false, threads: 1}
)",
                                           out, model_dir);
  auto tree = moerl::ConfigTree::FromYamlText(yaml, "fixture.yaml");
  moerl::TrainerSettings settings;
  if (!tree.ok() || !settings.Load(*tree).ok()) return 1;
  settings.run.experiment_name = "oracle";
  moerl::TrainerReport report;
  const absl::Status status = moerl::RunTrainer(settings, nullptr, &report);
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
    return 1;
  }
  return report.steps_done == 1 ? 0 : 1;
}
