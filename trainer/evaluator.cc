#include "trainer/evaluator.h"

#include "common/status.h"
#include "dataset/gsm8k.h"
#include "reward/answer.h"
#include "rollout/engine/engine.h"

namespace moerl {

absl::StatusOr<std::vector<EvalProblem>> LoadEvalProblems(const std::string& path, int64_t max_prompts,
                                                          const RenderPromptFn& render,
                                                          const TokenizeFn& tokenize) {
  MOERL_ASSIGN_OR_RETURN(Gsm8kFile file, LoadGsm8kFile(path));
  std::vector<EvalProblem> problems;
  for (const Gsm8kRow& row : file.rows) {
    if (static_cast<int64_t>(problems.size()) >= max_prompts) break;
    EvalProblem p;
    for (int32_t id : tokenize(render(Gsm8kUserContent(row.question)))) p.prompt.push_back(id);
    p.gold = row.gold_answer;
    problems.push_back(std::move(p));
  }
  return problems;
}

absl::StatusOr<EvalResult> Evaluate(const std::shared_ptr<Qwen3Model>& model,
                                    const std::vector<EvalProblem>& problems, const DecodeFn& decode,
                                    const EvalOptions& options) {
  EvalResult result;
  result.prompts = static_cast<int64_t>(problems.size());
  if (problems.empty()) return result;
  GenerationEngine engine(model);
  auto score = [&](const std::vector<Generation>& outs, int64_t per_prompt, double* mean) -> absl::Status {
    double sum = 0;
    for (size_t i = 0; i < outs.size(); ++i) {
      MOERL_ASSIGN_OR_RETURN(std::string text, decode(outs[i].tokens));
      sum += ScoreCompletion(text, problems[i / per_prompt].gold).reward;
    }
    *mean = sum / static_cast<double>(outs.size());
    return absl::OkStatus();
  };
  std::vector<std::vector<int64_t>> prompts;
  for (const EvalProblem& p : problems) {
    for (int64_t s = 0; s < options.n_samples; ++s) prompts.push_back(p.prompt);
  }
  SamplingConfig sampled;
  sampled.max_new_tokens = options.max_new_tokens;
  sampled.temperature = options.temperature;
  sampled.stop_ids = options.stop_ids;
  sampled.seed = options.seed;
  MOERL_ASSIGN_OR_RETURN(std::vector<Generation> outs, engine.Generate(prompts, sampled));
  MOERL_RETURN_IF_ERROR(score(outs, options.n_samples, &result.reward));

  prompts.clear();
  for (const EvalProblem& p : problems) prompts.push_back(p.prompt);
  SamplingConfig greedy = sampled;
  greedy.temperature = 0;
  MOERL_ASSIGN_OR_RETURN(outs, engine.Generate(prompts, greedy));
  MOERL_RETURN_IF_ERROR(score(outs, 1, &result.greedy_accuracy));
  return result;
}

}  // namespace moerl
