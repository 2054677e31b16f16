// trainer: computes GRPO advantages for a list of rewards (whole groups;
// each sequence one completion token), AReaL's group-normalised rewards.
// (The MoE trainer arrives with the model and parallelism issues.)
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "trainer/advantages.h"

ABSL_FLAG(std::string, rewards, "", "comma-separated rewards, whole groups");
ABSL_FLAG(int, group_size, 1, "completions per prompt");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<float> rewards;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_rewards), ',')) {
    float value;
    if (!absl::SimpleAtof(part, &value)) {
      std::fprintf(stderr, "trainer: --rewards: \"%s\" is not a number\n",
                   std::string(part).c_str());
      return 2;
    }
    rewards.push_back(value);
  }
  const int64_t b = static_cast<int64_t>(rewards.size());
  moerl::AdvantageBatch batch;  // row = [prompt token, completion token]
  batch.rewards_b = at::tensor(rewards);
  batch.loss_mask_bl = at::zeros({b, 2});
  batch.loss_mask_bl.select(1, 1).fill_(1.0);
  batch.behave_logp_bl = at::zeros({b, 2});
  batch.seqlens_b = at::full({b}, 2, at::kLong);
  moerl::AdvantageConfig config;
  config.reward_norm = moerl::NormConfig{"group", "group"};
  config.reward_norm->group_size = absl::GetFlag(FLAGS_group_size);
  auto advantages = moerl::ComputeAdvantages(batch, config);
  if (!advantages.ok()) {
    std::fprintf(stderr, "trainer: %s\n", std::string(advantages.status().message()).c_str());
    return 1;
  }
  const at::Tensor first = advantages->advantages_bl.select(1, 0).contiguous();
  for (int64_t i = 0; i < b; ++i) std::printf("%.6f\n", first.data_ptr<float>()[i]);
  return 0;
}
