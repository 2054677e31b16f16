// Evaluation on a held-out GSM8K-format split with the in-process generation
// engine (rollout/engine): AReaL's eval-rollout/reward (mean reward of
// n_samples completions per prompt at a temperature) and greedy accuracy,
// scored by reward/answer.h's ScoreCompletion (the scorer's own rule).
//
//   MOERL_ASSIGN_OR_RETURN(auto problems, LoadEvalProblems(path, max_prompts, render, tokenize));
//   MOERL_ASSIGN_OR_RETURN(EvalResult r, Evaluate(model, problems, decode, options));
//
// Thread: the caller's; runs the model (no training in between).
#ifndef MOERL_TRAINER_EVALUATOR_H_
#define MOERL_TRAINER_EVALUATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dataset/prompt.h"
#include "trainer/model/model.h"

namespace moerl {

struct EvalProblem {
  std::vector<int64_t> prompt;
  std::string gold;
};

struct EvalOptions {
  int64_t n_samples = 4;
  double temperature = 0.6;
  int64_t max_new_tokens = 64;
  std::vector<int64_t> stop_ids;
  uint64_t seed = 1;
};

struct EvalResult {
  double reward = 0;           // eval-rollout/reward
  double greedy_accuracy = 0;  // eval-rollout/greedy_accuracy
  int64_t prompts = 0;
};

using DecodeFn = std::function<absl::StatusOr<std::string>(const std::vector<int64_t>& ids)>;

// The first `max_prompts` rows of a GSM8K jsonl, rendered and tokenized as
// the feeder does.
absl::StatusOr<std::vector<EvalProblem>> LoadEvalProblems(const std::string& path, int64_t max_prompts,
                                                          const RenderPromptFn& render,
                                                          const TokenizeFn& tokenize);

absl::StatusOr<EvalResult> Evaluate(const std::shared_ptr<Qwen3Model>& model,
                                    const std::vector<EvalProblem>& problems, const DecodeFn& decode,
                                    const EvalOptions& options);

}  // namespace moerl

#endif  // MOERL_TRAINER_EVALUATOR_H_
