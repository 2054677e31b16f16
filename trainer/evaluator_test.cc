// Evaluate end to end: the real engine generates from a model built to
// answer each problem with a known text, the real scorer (reward/answer.h)
// grades it, and eval-rollout/reward and greedy_accuracy are exactly the
// fraction of problems answered right.
#include "trainer/evaluator.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "trainer/model/hf_weights.h"

namespace moerl {
namespace {

constexpr char kMoeDir[] = "trainer/model/testdata/moe";  // hidden 64, vocab 128
constexpr int64_t kEos = 2;

// The tiny model turned into a lookup table: every layer's output projection
// is zero (so the residual stream is the embedding), token v < 64 embeds as
// the unit vector e_v, and the LM head gives next[v] a logit of 160 and every
// other token 0. At temperature 0.6 the others' probabilities underflow to
// exactly 0, so sampling follows the table as greedy decoding does.
std::shared_ptr<Qwen3Model> TableModel(const std::map<int64_t, int64_t>& next) {
  auto loaded = LoadHfModel(kMoeDir);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  std::shared_ptr<Qwen3Model> model = *loaded;
  at::NoGradGuard no_grad;
  auto params = model->named_parameters();
  for (auto& p : params) p.value().zero_();
  params["model.norm.weight"].fill_(1.0);
  at::Tensor embed = params["model.embed_tokens.weight"], head = params["lm_head.weight"];
  for (int64_t v = 0; v < 64; ++v) embed[v][v] = 1.0;  // RmsNorm(e_v) = 8 e_v
  for (const auto& [from, to] : next) head[to][from] = 20.0;
  return model;
}

TEST(Evaluator, RightAnswersScoreOneAndWrongOnesZero) {
  // Problem i: prompt {1, 10 + i} -> generates 20 + i, 30 + i, then EOS.
  struct Case {
    std::string answer;  // what token 30 + i decodes to
    std::string gold;
    bool right;
  };
  const std::vector<Case> cases = {
      {"\\boxed{18}.", "18", true},
      {"\\boxed{7}.", "8", false},
      {"\\boxed{\\$42}.", "42", true},
      {"I do not know.", "5", false},
      {"\\boxed{18 dollars}.", "18", false},  // math-verify reads no unit "dollars" (reward/answer.h)
  };
  std::map<int64_t, int64_t> next;
  std::map<int64_t, std::string> pieces = {{kEos, ""}};
  std::vector<EvalProblem> problems;
  double right = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(cases.size()); ++i) {
    next[10 + i] = 20 + i;
    next[20 + i] = 30 + i;
    next[30 + i] = kEos;
    pieces[20 + i] = "Adding it up, the answer is ";
    pieces[30 + i] = cases[i].answer;
    problems.push_back({{1, 10 + i}, cases[i].gold});
    right += cases[i].right;
  }
  std::shared_ptr<Qwen3Model> model = TableModel(next);
  int64_t decoded = 0;
  DecodeFn decode = [&](const std::vector<int64_t>& ids) -> absl::StatusOr<std::string> {
    ++decoded;
    std::string text;
    for (int64_t id : ids) {
      auto it = pieces.find(id);
      if (it == pieces.end()) return absl::InternalError(absl::StrCat("generated unexpected token ", id));
      text += it->second;
    }
    return text;
  };
  EvalOptions options;
  options.n_samples = 3;
  options.temperature = 0.6;
  options.max_new_tokens = 8;
  options.stop_ids = {kEos};
  absl::StatusOr<EvalResult> result = Evaluate(model, problems, decode, options);
  ASSERT_TRUE(result.ok()) << result.status();
  const double n = static_cast<double>(cases.size());
  EXPECT_EQ(result->prompts, 5);
  EXPECT_EQ(decoded, 5 * 3 + 5);  // the samples, then one greedy pass
  EXPECT_DOUBLE_EQ(result->reward, right / n);  // 2 / 5
  EXPECT_DOUBLE_EQ(result->greedy_accuracy, right / n);
  EXPECT_EQ(right, 2);

  // The same texts against golds none of them states: 0.
  std::vector<EvalProblem> wrong = problems;
  for (EvalProblem& p : wrong) p.gold = "99";
  result = Evaluate(model, wrong, decode, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->reward, 0.0);
  EXPECT_EQ(result->greedy_accuracy, 0.0);
}

}  // namespace
}  // namespace moerl
