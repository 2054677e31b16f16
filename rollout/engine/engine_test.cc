#include "rollout/engine/engine.h"

#include <cmath>
#include <cstring>

#include "gtest/gtest.h"
#include "trainer/model/fixture.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/model.h"

namespace moerl {
namespace {

struct Case {
  std::shared_ptr<Qwen3Model> model;
  std::vector<std::vector<int64_t>> prompts, want;  // want: generated ids only
};

Case LoadCase(const std::string& dir) {
  Case c;
  auto model = LoadHfModel(dir);
  EXPECT_TRUE(model.ok()) << model.status();
  auto fx = OracleFixture::Open(dir + "/oracle.safetensors");
  EXPECT_TRUE(fx.ok()) << fx.status();
  if (!model.ok() || !fx.ok()) return c;
  c.model = *model;
  for (int i = 0; (*fx)->Has("generate." + std::to_string(i) + ".prompt"); ++i) {
    at::Tensor p = (*fx)->Get("generate." + std::to_string(i) + ".prompt");
    at::Tensor o = (*fx)->Get("generate." + std::to_string(i) + ".output");
    std::vector<int64_t> prompt(p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + p.numel());
    std::vector<int64_t> all(o.data_ptr<int64_t>(), o.data_ptr<int64_t>() + o.numel());
    c.prompts.push_back(prompt);
    c.want.emplace_back(all.begin() + prompt.size(), all.end());
  }
  return c;
}

void ExpectGreedyMatches(const std::string& dir) {
  Case c = LoadCase(dir);
  ASSERT_TRUE(c.model);
  ASSERT_EQ(c.prompts.size(), 3u);
  GenerationEngine engine(c.model);
  SamplingConfig cfg;
  cfg.temperature = 0.0;
  cfg.max_new_tokens = static_cast<int64_t>(c.want[0].size());
  auto outs = engine.Generate(c.prompts, cfg);  // ragged prompts in one batch
  ASSERT_TRUE(outs.ok()) << outs.status();
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    EXPECT_EQ((*outs)[i].tokens, c.want[i]) << dir << " prompt " << i;
    EXPECT_EQ((*outs)[i].finish_reason, "length");
  }
}

TEST(GenerationEngine, GreedyIdsMatchTransformersGenerateForMoe) {
  ExpectGreedyMatches("trainer/model/testdata/moe");
}

TEST(GenerationEngine, GreedyIdsMatchTransformersGenerateForDense) {
  ExpectGreedyMatches("trainer/model/testdata/dense");
}

SamplingConfig Sampled(uint64_t seed) {
  SamplingConfig cfg;
  cfg.temperature = 0.8;
  cfg.top_p = 0.95;
  cfg.max_new_tokens = 12;
  cfg.seed = seed;
  return cfg;
}

TEST(GenerationEngine, DeterministicLogProbsEqualTrainerBitForBit) {
  Case c = LoadCase("trainer/model/testdata/moe");
  ASSERT_TRUE(c.model);
  GenerationEngine engine(c.model);
  SamplingConfig cfg = Sampled(3);
  cfg.deterministic_logprobs = true;
  auto outs = engine.Generate(c.prompts, cfg);
  ASSERT_TRUE(outs.ok()) << outs.status();
  // The trainer's recomputation: one packed training forward over the batch.
  std::vector<std::vector<int64_t>> full = c.prompts;
  std::vector<int64_t> prompt_lens;
  for (size_t i = 0; i < full.size(); ++i) {
    prompt_lens.push_back(static_cast<int64_t>(c.prompts[i].size()));
    full[i].insert(full[i].end(), (*outs)[i].tokens.begin(), (*outs)[i].tokens.end());
  }
  auto scored = ScoreSequences(*c.model, full, prompt_lens, cfg.temperature);
  ASSERT_TRUE(scored.ok()) << scored.status();
  const auto& trainer = *scored;
  for (size_t i = 0; i < full.size(); ++i) {
    ASSERT_EQ(trainer[i].size(), (*outs)[i].logprobs.size());
    EXPECT_EQ(std::memcmp(trainer[i].data(), (*outs)[i].logprobs.data(), trainer[i].size() * sizeof(float)), 0)
        << "sequence " << i << " log-probs differ from the trainer's";
  }
}

TEST(GenerationEngine, DecodeLogProbsStayCloseToTrainer) {
  Case c = LoadCase("trainer/model/testdata/moe");
  ASSERT_TRUE(c.model);
  GenerationEngine engine(c.model);
  SamplingConfig cfg = Sampled(5);
  auto outs = engine.Generate(c.prompts, cfg);
  ASSERT_TRUE(outs.ok()) << outs.status();
  auto measured = engine.MeasureGap(c.prompts, *outs, cfg.temperature);
  ASSERT_TRUE(measured.ok()) << measured.status();
  const LogProbGap& gap = *measured;
  std::cout << "train/inference log-prob gap (fp32, KV-cache decode vs training forward): max_abs="
            << gap.max_abs << " mean(exp(diff)-1)=" << gap.mean_ratio_minus_one << " over " << gap.tokens
            << " tokens\n";
  EXPECT_EQ(gap.tokens, 36);
  EXPECT_LE(gap.max_abs, 1e-4);
}

TEST(GenerationEngine, SameSeedSameTokensDifferentSeedDifferentTokens) {
  Case c = LoadCase("trainer/model/testdata/moe");
  ASSERT_TRUE(c.model);
  GenerationEngine engine(c.model);
  auto a = engine.Generate(c.prompts, Sampled(11));
  auto b = engine.Generate(c.prompts, Sampled(11));
  auto d = engine.Generate(c.prompts, Sampled(12));
  ASSERT_TRUE(a.ok() && b.ok() && d.ok());
  bool differs = false;
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    EXPECT_EQ((*a)[i].tokens, (*b)[i].tokens);
    differs |= (*a)[i].tokens != (*d)[i].tokens;
  }
  EXPECT_TRUE(differs);
}

TEST(GenerationEngine, TopKOfOneIsGreedy) {
  Case c = LoadCase("trainer/model/testdata/moe");
  ASSERT_TRUE(c.model);
  GenerationEngine engine(c.model);
  SamplingConfig cfg = Sampled(1);
  cfg.top_k = 1;
  cfg.max_new_tokens = static_cast<int64_t>(c.want[0].size());
  auto outs = engine.Generate(c.prompts, cfg);
  ASSERT_TRUE(outs.ok());
  for (size_t i = 0; i < c.prompts.size(); ++i) EXPECT_EQ((*outs)[i].tokens, c.want[i]);
}

TEST(GenerationEngine, StopIdEndsTheSequenceAndIsKept) {
  Case c = LoadCase("trainer/model/testdata/moe");
  ASSERT_TRUE(c.model);
  GenerationEngine engine(c.model);
  SamplingConfig cfg;
  cfg.temperature = 0.0;
  cfg.max_new_tokens = 10;
  const int64_t stop = c.want[0][6];
  cfg.stop_ids = {stop};
  auto outs = engine.Generate({c.prompts[0]}, cfg);
  ASSERT_TRUE(outs.ok());
  const auto& toks = (*outs)[0].tokens;
  ASSERT_FALSE(toks.empty());
  EXPECT_EQ(toks.back(), stop);
  EXPECT_EQ((*outs)[0].finish_reason, "stop");
  EXPECT_EQ(toks, std::vector<int64_t>(c.want[0].begin(), c.want[0].begin() + toks.size()));
}

TEST(GenerationEngine, GreedyLogProbsStayCloseToTrainer) {
  Case c = LoadCase("trainer/model/testdata/moe");
  ASSERT_TRUE(c.model);
  GenerationEngine engine(c.model);
  SamplingConfig cfg;
  cfg.temperature = 0.0;
  cfg.max_new_tokens = 12;
  auto outs = engine.Generate(c.prompts, cfg);
  ASSERT_TRUE(outs.ok()) << outs.status();
  auto gap = engine.MeasureGap(c.prompts, *outs, 1.0);
  ASSERT_TRUE(gap.ok()) << gap.status();
  EXPECT_EQ(gap->tokens, 36);
  EXPECT_LE(gap->max_abs, 1e-4);
}

TEST(ScoreSequences, OutOfVocabularyIdIsInvalidArgumentNamingSequenceAndPosition) {
  Case c = LoadCase("trainer/model/testdata/dense");
  ASSERT_TRUE(c.model);
  const int64_t vocab = c.model->config().vocab_size;
  auto bad = ScoreSequences(*c.model, {{1, 2, 3}, {4, 5, vocab, 6}}, {1, 1}, 1.0);
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.status().message()).find("sequence 1 position 2"), std::string::npos)
      << bad.status();
  auto negative = ScoreSequences(*c.model, {{-1, 2}}, {1}, 1.0);
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  auto mismatched = ScoreSequences(*c.model, {{1, 2}}, {1, 1}, 1.0);
  EXPECT_EQ(mismatched.status().code(), absl::StatusCode::kInvalidArgument);
  auto good = ScoreSequences(*c.model, {{1, 2, 3}, {4, 5, 6, 7}}, {1, 2}, 1.0);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ((*good)[0].size(), 2u);
  EXPECT_EQ((*good)[1].size(), 2u);
}

TEST(GenerationEngine, MeasureGapRejectsMismatchedOutputs) {
  Case c = LoadCase("trainer/model/testdata/dense");
  ASSERT_TRUE(c.model);
  GenerationEngine engine(c.model);
  EXPECT_EQ(engine.MeasureGap(c.prompts, {}, 1.0).status().code(), absl::StatusCode::kInvalidArgument);
}

// bf16 weights take the training forward for decode steps (DecodeForward is
// fp32-only); the outputs keep their shape and log-probs stay finite.
TEST(GenerationEngine, Bf16ModelGeneratesThroughTheTrainingForward) {
  Case c = LoadCase("trainer/model/testdata/moe");
  ASSERT_TRUE(c.model);
  c.model->to(at::kBFloat16);
  GenerationEngine engine(c.model);
  SamplingConfig cfg = Sampled(2);
  cfg.max_new_tokens = 5;
  auto outs = engine.Generate(c.prompts, cfg);
  ASSERT_TRUE(outs.ok()) << outs.status();
  for (const Generation& g : *outs) {
    ASSERT_EQ(g.tokens.size(), 5u);
    for (float lp : g.logprobs) EXPECT_TRUE(std::isfinite(lp) && lp <= 0.0f) << lp;
  }
}

TEST(GenerationEngine, BadRequestsAreInvalidArgument) {
  Case c = LoadCase("trainer/model/testdata/dense");
  ASSERT_TRUE(c.model);
  GenerationEngine engine(c.model);
  SamplingConfig cfg;
  EXPECT_EQ(engine.Generate({}, cfg).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine.Generate({{}}, cfg).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine.Generate({{1, 100000}}, cfg).status().code(), absl::StatusCode::kInvalidArgument);
  cfg.top_p = 0.0;
  EXPECT_EQ(engine.Generate({{1}}, cfg).status().code(), absl::StatusCode::kInvalidArgument);
  cfg.top_p = 1.0;
  cfg.max_new_tokens = 1000;
  EXPECT_EQ(engine.Generate({{1}}, cfg).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moerl
