#include "rollout/bridge_settings.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<BridgeSettings> Load(const std::string& yaml) {
  absl::StatusOr<ConfigTree> tree = ConfigTree::FromYamlText(yaml, "run.yaml");
  if (!tree.ok()) return tree.status();
  BridgeSettings settings;
  absl::Status status = settings.Load(*tree);
  if (!status.ok()) return status;
  return settings;
}

constexpr char kBase[] = R"(experiment_name: gsm8k
trial_name: t0
cluster: {fileroot: /runs}
)";

TEST(BridgeSettings, AReaLKeysMapToTheRequestAndDefaultsComeFromTheRunFolder) {
  absl::StatusOr<BridgeSettings> s = Load(std::string(kBase) + R"(
gconfig: {n_samples: 4, max_new_tokens: 1024, max_tokens: 2048, greedy: true, top_k: 100000000,
          stop_token_ids: [7]}
rollout: {consumer_batch_size: 256, max_head_offpolicyness: 2,
          server_addrs: "10.0.0.5:30000, 10.0.0.6:30000"}
)");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->server_addrs, (std::vector<std::string>{"10.0.0.5:30000", "10.0.0.6:30000"}));
  EXPECT_EQ(*s->PromptRing(), "gsm8k.t0.prompts");
  EXPECT_EQ(*s->TrajectoryRing(), "gsm8k.t0.trajectories");
  EXPECT_EQ(s->WeightsDir(), "/runs/gsm8k/t0/weights");
  const BridgeConfig c = s->ToBridgeConfig({151645, 7});
  EXPECT_EQ(c.n_samples, 4u);
  EXPECT_EQ(c.sampling.temperature, 0.0);  // greedy
  EXPECT_EQ(c.sampling.top_k, -1);         // AReaL's 1e8 means off
  EXPECT_EQ(c.sampling.stop_token_ids, (std::vector<int64_t>{7, 151645}));
  EXPECT_EQ(c.max_concurrent_rollouts, 256);  // null: consumer_batch_size
  EXPECT_EQ(c.max_head_offpolicyness, 2);
  EXPECT_EQ(c.weights_dir, "/runs/gsm8k/t0/weights");
  EXPECT_TRUE(c.Validate().ok());
}

TEST(BridgeSettings, DeterministicAlgorithmsSeedEveryRequestFromTheRunSeed) {
  const std::string yaml = std::string(kBase) + "seed: 7\nrollout: {server_addrs: [h:1]}\n";
  absl::StatusOr<BridgeSettings> s = Load(yaml);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->ToBridgeConfig({}).sampling_seed_base.has_value());
  s = Load(yaml + "actor: {megatron: {use_deterministic_algorithms: True}}\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ToBridgeConfig({}).sampling_seed_base, std::optional<uint64_t>(7));
}

TEST(RequestSamplingSeed, DependsOnlyOnSeedGroupSampleAndOffset) {
  const int64_t a = RequestSamplingSeed(1, "gsm8k/train/17@0", 0, 0);
  EXPECT_EQ(a, RequestSamplingSeed(1, "gsm8k/train/17@0", 0, 0));
  EXPECT_GE(a, 0);
  EXPECT_NE(a, RequestSamplingSeed(2, "gsm8k/train/17@0", 0, 0));
  EXPECT_NE(a, RequestSamplingSeed(1, "gsm8k/train/18@0", 0, 0));
  EXPECT_NE(a, RequestSamplingSeed(1, "gsm8k/train/17@1", 0, 0));
  EXPECT_NE(a, RequestSamplingSeed(1, "gsm8k/train/17@0", 1, 0));
  EXPECT_NE(a, RequestSamplingSeed(1, "gsm8k/train/17@0", 0, 5));  // a resubmission after an abort
}

TEST(BridgeSettings, ConflictsNameTheKeysAndValues) {
  absl::StatusOr<BridgeSettings> s = Load(std::string(kBase) + "rollout: {}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("rollout.server_addrs"));
  s = Load(std::string(kBase) + "rollout: {server_addrs: [nohost]}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("nohost"));
  s = Load(std::string(kBase) +
           "rollout: {server_addrs: [h:1]}\ngconfig: {max_new_tokens: 100, max_tokens: 100}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("gconfig.max_tokens=100"));
  s = Load(std::string(kBase) +
           "rollout: {server_addrs: [h:1], server_api: vllm, return_routed_experts: true}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("rollout.server_api=vllm"));
  s = Load(std::string(kBase) + "rollout: {server_addrs: [h:1], request_timeout: 0}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("rollout.request_timeout"));
}

TEST(BridgeSettings, KeysOfOtherStagesInSharedSectionsAreLeftAlone) {
  absl::StatusOr<BridgeSettings> s = Load(std::string(kBase) + R"(
rollout: {server_addrs: [h:1], backend: "sglang:d4", queue_size: null}
gconfig: {frequency_penalty: 0}
)");
  EXPECT_TRUE(s.ok()) << s.status();
}

}  // namespace
}  // namespace moerl
