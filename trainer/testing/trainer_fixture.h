// Fixtures shared by the trainer's in-process tests (trainer_run_test,
// trainer_ranks_test, trainer_reshard_test): fresh folders, batch files from
// the tiny MoE, the trainer's settings for them, and its stats read back.
//
//   const std::string root = FreshTestDir("e2e");
//   const TrainerSettings s = TestTrainerSettings(root, "trial0");
//   WriteTestBatches(s.BatchesDir(), /*n=*/3, /*groups=*/2, /*seed=*/1);
#ifndef MOERL_TRAINER_TESTING_TRAINER_FIXTURE_H_
#define MOERL_TRAINER_TESTING_TRAINER_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trainer/model/model.h"
#include "trainer/train_batch.h"
#include "trainer/trainer_settings.h"

namespace moerl {

// The tiny Qwen3-MoE checkpoint (a runfile).
inline constexpr char kTestMoeDir[] = "trainer/model/testdata/moe";

// kTestMoeDir's model in `dtype`; fails the current test when it cannot load.
std::shared_ptr<Qwen3Model> LoadTestModel(at::ScalarType dtype = at::kFloat);

// `n` random prompt + completion sequences of different lengths (ids below
// 128): prompts of 3-8 tokens, completions of `min_completion` to
// `min_completion` + 8, drawn from `seed`.
std::vector<TrainSequence> RandomTrainSequences(int n, uint64_t seed, int min_completion);

// $TEST_TMPDIR/<name>, emptied.
std::string FreshTestDir(const std::string& name);

// A whole file's bytes ("" when it cannot be read).
std::string ReadTestFile(const std::string& path);

// `n` batch files <dir>/NNNNNN.rec of `groups` groups x 4 samples (random
// prompts and completions from `seed`, rewards 0/1, the last sample of each
// group cut at length), behaviour log-probs from kTestMoeDir's weights
// (version 0). With `routes`, each completion token also carries random
// (distinct) top-k experts for every MoE layer (`routed_experts`), which the
// model's own router would rarely pick: router replay then changes the step.
// Fails the current test on error.
void WriteTestBatches(const std::string& dir, int n, int groups, uint64_t seed, bool routes = false);

// GRPO settings on kTestMoeDir in fp32 (AReaL's GSM8K loss options, two
// minibatches, micro-batches of `max_tokens_per_mb`, a checkpoint every step,
// recover.mode=auto, fixed batch folder), with `overrides` applied.
TrainerSettings TestTrainerSettings(const std::string& root, const std::string& trial,
                                    const std::vector<std::string>& overrides = {},
                                    int max_tokens_per_mb = 64);

// The loss (ppo_actor/update/actor_loss/avg), gradient norm and bytes sent
// in training of each line of a stats.jsonl, in order.
struct StepNumbers {
  double loss = 0, grad_norm = 0;
  double comm_bytes = -1;  // comm/train_bytes_sent (absent on one process)
};
std::vector<StepNumbers> ReadStepNumbers(const std::string& stats_path);

}  // namespace moerl

#endif  // MOERL_TRAINER_TESTING_TRAINER_FIXTURE_H_
