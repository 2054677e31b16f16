#include "trainer/trainer_settings.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

// AReaL's gsm8k_grpo.yaml actor section, as the pipeline passes it to every stage.
constexpr char kGsm8kYaml[] = R"(
experiment_name: gsm8k-grpo
trial_name: trial0
seed: 1
total_train_epochs: 10
tokenizer_path: ${actor.path}
cluster:
  n_nodes: 1
  n_gpus_per_node: 8
  fileroot: /tmp/moerl/experiments
gconfig:
  n_samples: 4
  max_new_tokens: 1024
actor:
  backend: "fsdp:d4p1t1"
  path: /models/qwen
  init_from_scratch: false
  disable_dropout: true
  gradient_checkpointing: true
  dtype: bfloat16
  mb_spec:
    max_tokens_per_mb: 10240
  optimizer:
    type: adam
    lr: 1.70e-5
    weight_decay: 0.017
    beta1: 0.9
    beta2: 0.999
    eps: 1e-8
    lr_scheduler_type: constant
    gradient_clipping: 1.0
    warmup_steps_proportion: 0.001
  group_size: ${gconfig.n_samples}
  eps_clip: 0.4
  temperature: 1.0
  reward_scaling: 10.0
  reward_bias: -0.5
  kl_ctl: 0.0
  ppo_n_minibatches: 1
  recompute_logprob: true
  use_decoupled_loss: true
  rejection_sampling:
    metric: ratio
    upper: 5.0
  reward_norm:
    mean_level: group
    std_level: group
    group_size: ${gconfig.n_samples}
  adv_norm:
    mean_level: batch
    std_level: batch
  max_new_tokens: ${gconfig.max_new_tokens}
ref:
  backend: ${actor.backend}
  path: ${actor.path}
saver:
  freq_epochs: 1
  freq_steps: null
recover:
  mode: disabled
train_dataset:
  batch_size: 256
  path: openai/gsm8k
)";

absl::StatusOr<TrainerSettings> Load(const std::string& yaml,
                                     const std::vector<std::string>& overrides = {}) {
  auto tree = ConfigTree::FromYamlText(yaml, "test.yaml");
  if (!tree.ok()) return tree.status();
  for (const std::string& o : overrides) {
    absl::Status s = tree->ApplyOverride(o);
    if (!s.ok()) return s;
  }
  absl::Status s = tree->ResolveInterpolations();
  if (!s.ok()) return s;
  TrainerSettings settings;
  s = settings.Load(*tree);
  if (!s.ok()) return s;
  return settings;
}

TEST(TrainerSettings, ReadsAReaLGsm8kExample) {
  auto s = Load(kGsm8kYaml);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->actor_path, "/models/qwen");
  EXPECT_DOUBLE_EQ(s->optimizer.lr, 1.7e-5);
  EXPECT_DOUBLE_EQ(s->optimizer.weight_decay, 0.017);
  EXPECT_EQ(s->ppo_n_minibatches, 1);
  EXPECT_DOUBLE_EQ(s->eps_clip, 0.4);
  EXPECT_FALSE(s->eps_clip_higher.has_value());
  EXPECT_DOUBLE_EQ(s->reward_scaling, 10.0);
  EXPECT_DOUBLE_EQ(s->reward_bias, -0.5);
  ASSERT_TRUE(s->reward_norm.has_value());
  EXPECT_EQ(s->reward_norm->mean_level, "group");
  EXPECT_EQ(s->reward_norm->group_size, 4);
  ASSERT_TRUE(s->adv_norm.has_value());
  EXPECT_EQ(s->adv_norm->std_level, "batch");
  EXPECT_TRUE(s->adv_norm->std_unbiased);
  ASSERT_TRUE(s->rejection_sampling.has_value());
  EXPECT_EQ(*s->rejection_sampling->upper, 5.0);
  EXPECT_FALSE(s->rejection_sampling->lower.has_value());
  EXPECT_EQ(s->rejection_sampling->level, "token");
  EXPECT_EQ(*s->max_tokens_per_mb, 10240);
  EXPECT_TRUE(s->ComputeProxLogp());
  EXPECT_FALSE(s->saver_freq_steps.has_value());
  EXPECT_EQ(s->RunDir(), "/tmp/moerl/experiments/gsm8k-grpo/trial0");
  EXPECT_EQ(s->BatchesDir(), "/tmp/moerl/experiments/gsm8k-grpo/trial0/batches");
  EXPECT_EQ(s->keep_weight_versions, 3);
  EXPECT_EQ(s->keep_checkpoints, 2);
  EXPECT_EQ(s->mode, "grpo");
}

TEST(TrainerSettings, NullSubsectionIsOff) {
  auto s = Load(kGsm8kYaml, {"actor.reward_norm=null", "actor.rejection_sampling=null",
                             "+actor.eps_clip_higher=0.28"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->reward_norm.has_value());
  EXPECT_FALSE(s->rejection_sampling.has_value());
  EXPECT_TRUE(s->adv_norm.has_value());
  EXPECT_DOUBLE_EQ(*s->eps_clip_higher, 0.28);
  auto off = Load(kGsm8kYaml, {"actor.adv_norm.std_level=null"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->adv_norm->std_level, "");
}

TEST(TrainerSettings, ErrorsNameTheKeyPath) {
  struct Case {
    std::vector<std::string> overrides;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {{"+actor.optimizer.lrr=1"}, "actor.optimizer.lrr"},
      {{"actor.optimizer.lr=abc"}, "key 'actor.optimizer.lr'"},
      {{"actor.optimizer.lr=0"}, "actor.optimizer.lr must be > 0"},
      {{"+actor.reward_norm.meanlevel=batch"}, "did you mean 'actor.reward_norm.mean_level'"},
      {{"+actor.c_clip=0.5"}, "actor.c_clip must be > 1"},
      {{"actor.kl_ctl=0.1", "ref.path="}, "set ref.path"},
      {{"actor.path="}, "actor.path is required"},
      {{"+trainer.mode=rl"}, "trainer.mode"},
      {{"+trainer.modee=sft"}, "trainer.modee"},
      {{"+trainer.mode=sft"}, "trainer.sft_dataset"},
      {{"actor.optimizer.lr_scheduler_type=cosine"}, "needs total_train_steps"},
      {{"recover.mode=sometimes"}, "recover.mode"},
      {{"actor.dtype=float16"}, "actor.dtype"},
  };
  for (const Case& c : cases) {
    auto s = Load(kGsm8kYaml, c.overrides);
    ASSERT_FALSE(s.ok()) << c.overrides[0];
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << c.overrides[0];
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.expected)) << c.overrides[0];
  }
}

TEST(TrainerSettings, OtherStagesActorKeysAreAccepted) {
  auto s = Load(kGsm8kYaml, {"+actor.megatron.use_deterministic_algorithms=true",
                             "+actor.scheduling_spec.cmd=x", "+actor.weight_update_mode=disk"});
  EXPECT_TRUE(s.ok()) << s.status();
}

// AReaL's actor.megatron.ddp.use_distributed_optimizer: true unless set.
TEST(TrainerSettings, DistributedOptimizerKeyDefaultsOn) {
  auto on = Load(kGsm8kYaml);
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->use_distributed_optimizer);
  auto off = Load(kGsm8kYaml, {"+actor.megatron.ddp.use_distributed_optimizer=false"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->use_distributed_optimizer);
  auto bad = Load(kGsm8kYaml, {"+actor.megatron.ddp.use_distributed_optimizer=sometimes"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("actor.megatron.ddp.use_distributed_optimizer"));
}

}  // namespace
}  // namespace moerl
