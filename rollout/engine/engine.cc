#include "rollout/engine/engine.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/multinomial.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/tensor.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "rollout/engine/decode_forward.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/model.h"

namespace moerl {
namespace {

absl::Status Validate(const std::vector<std::vector<int64_t>>& prompts, const SamplingConfig& c,
                      const ModelConfig& model) {
  if (prompts.empty()) return absl::InvalidArgumentError("no prompts to generate from");
  if (c.max_new_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens must be >= 1, found ", c.max_new_tokens));
  }
  if (!(c.temperature >= 0.0) || !std::isfinite(c.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0, found ", c.temperature));
  }
  if (c.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, found ", c.top_k));
  if (!(c.top_p > 0.0 && c.top_p <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], found ", c.top_p));
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " is empty"));
    for (size_t j = 0; j < prompts[i].size(); ++j) {
      if (prompts[i][j] < 0 || prompts[i][j] >= model.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " token ", j, " is ", prompts[i][j],
                                                       ", outside the vocabulary [0, ", model.vocab_size, ")"));
      }
    }
    const int64_t total = static_cast<int64_t>(prompts[i].size()) + c.max_new_tokens;
    if (model.max_position_embeddings > 0 && total > model.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " (", prompts[i].size(),
                                                     " tokens) + max_new_tokens ", c.max_new_tokens,
                                                     " exceeds max_position_embeddings ",
                                                     model.max_position_embeddings));
    }
  }
  return absl::OkStatus();
}

// One token per row: greedy, or temperature + top-k + top-p + a seeded draw.
at::Tensor SampleRows(const at::Tensor& logits_bv, const SamplingConfig& c, at::Generator& gen) {
  if (c.temperature == 0.0) return logits_bv.argmax(-1);
  at::Tensor z_bv = logits_bv.to(at::kFloat) / c.temperature;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (c.top_k > 0 && c.top_k < z_bv.size(1)) {
    at::Tensor kth_b1 = std::get<0>(z_bv.topk(c.top_k, -1)).narrow(1, c.top_k - 1, 1);
    z_bv = z_bv.masked_fill(z_bv < kth_b1, neg_inf);
  }
  if (c.top_p < 1.0) {
    auto [sorted_bv, order_bv] = at::sort(z_bv, -1, /*descending=*/true);
    at::Tensor probs_bv = sorted_bv.softmax(-1);
    // Drop a token once the mass before it already reaches top_p (the first always stays).
    at::Tensor drop_bv = (at::cumsum(probs_bv, -1) - probs_bv) >= c.top_p;
    sorted_bv = sorted_bv.masked_fill(drop_bv, neg_inf);
    z_bv = at::full_like(z_bv, neg_inf).scatter(1, order_bv, sorted_bv);
  }
  return at::multinomial(z_bv.softmax(-1), 1, /*replacement=*/false, gen).squeeze(1);
}

// Greedy: the first index of each row's maximum (at::argmax's tie rule).
std::vector<int64_t> ArgmaxRows(const float* logits_bv, int64_t rows, int64_t vocab) {
  std::vector<int64_t> out(rows);
  for (int64_t b = 0; b < rows; ++b) {
    const float* z = logits_bv + b * vocab;
    out[b] = std::max_element(z, z + vocab) - z;
  }
  return out;
}

// The trainer's formula (logprobs.h) on given logits: z = logits / T,
// logp = z[y] - logsumexp(z).
std::vector<float> TokenLogProbsFromLogits(const float* logits_bv, int64_t rows, int64_t vocab,
                                           const std::vector<int64_t>& tokens, double temperature) {
  std::vector<float> out(rows);
  const float t = static_cast<float>(temperature);
  for (int64_t b = 0; b < rows; ++b) {
    const float* logits = logits_bv + b * vocab;
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t v = 0; v < vocab; ++v) top = std::max(top, temperature == 1.0 ? logits[v] : logits[v] / t);
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp((temperature == 1.0 ? logits[v] : logits[v] / t) - top);
    const float lse = top + static_cast<float>(std::log(sum));
    const float z = temperature == 1.0 ? logits[tokens[b]] : logits[tokens[b]] / t;
    out[b] = z - lse;
  }
  return out;
}

}  // namespace

GenerationEngine::GenerationEngine(std::shared_ptr<Qwen3Model> model) : model_(std::move(model)) {}

absl::StatusOr<std::vector<Generation>> GenerationEngine::Generate(
    const std::vector<std::vector<int64_t>>& prompts, const SamplingConfig& c) {
  const ModelConfig& mc = model_->config();
  if (absl::Status s = Validate(prompts, c, mc); !s.ok()) return s;
  const int64_t batch = static_cast<int64_t>(prompts.size()), vocab = mc.vocab_size;
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, p.size());
  std::vector<Generation> outs(batch);
  std::vector<int64_t> prompt_lens;
  for (const auto& p : prompts) prompt_lens.push_back(static_cast<int64_t>(p.size()));
  const double logprob_temperature = c.temperature == 0.0 ? 1.0 : c.temperature;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  {
    c10::InferenceMode inference;
    KvCache cache = KvCache::Allocate(mc.num_hidden_layers, batch, mc.num_key_value_heads,
                                      longest + c.max_new_tokens, mc.head_dim, model_->dtype());
    // Prefill: every prompt in its own cache slot, all in one forward; the LM
    // head only at each prompt's last position. Then one token per live
    // sequence per step. fp32 models run both through the inference-only
    // DecodeForward, others through the training forward with the cache.
    std::unique_ptr<DecodeForward> decoder;
    if (DecodeForward::Supported(*model_)) decoder = std::make_unique<DecodeForward>(*model_, &cache);
    at::Tensor hidden_bd;                // training-forward path
    std::vector<float> last_hidden_bd;   // DecodeForward path
    const float* hidden = nullptr;
    if (decoder) {
      std::vector<int64_t> tokens, slots;
      for (int64_t i = 0; i < batch; ++i) {
        tokens.insert(tokens.end(), prompts[i].begin(), prompts[i].end());
        slots.insert(slots.end(), prompts[i].size(), i);
      }
      const std::vector<float>& all_td = decoder->Step(tokens, slots);
      const int64_t d = mc.hidden_size;
      last_hidden_bd.resize(batch * d);
      int64_t end = 0;
      for (int64_t i = 0; i < batch; ++i) {
        end += prompt_lens[i];
        std::copy(all_td.begin() + (end - 1) * d, all_td.begin() + end * d, last_hidden_bd.begin() + i * d);
      }
      hidden = last_hidden_bd.data();
    } else {
      ModelInput in = ModelInput::Pack(prompts);
      for (int64_t i = 0; i < batch; ++i) cache.slot_of_segment.push_back(i);
      in.cache = &cache;
      at::Tensor last_rows = at::cumsum(at::tensor(prompt_lens, i64), 0) - 1;
      hidden_bd = model_->Forward(in).hidden_td.index_select(0, last_rows);
    }
    at::Tensor logits_all = at::empty({batch, vocab}, at::TensorOptions().dtype(at::kFloat));
    std::vector<int64_t> live(batch);
    for (int64_t i = 0; i < batch; ++i) live[i] = i;
    while (!live.empty()) {
      const int64_t rows = static_cast<int64_t>(live.size());
      at::Tensor logits_bv = logits_all.narrow(0, 0, rows);
      if (decoder) {
        decoder->Logits(hidden, rows, logits_bv.data_ptr<float>());
      } else {
        logits_bv.copy_(at::linear(hidden_bd, model_->lm_head_weight()));
      }
      const float* logits = logits_bv.data_ptr<float>();
      std::vector<int64_t> tok;
      if (c.temperature == 0.0) {
        tok = ArgmaxRows(logits, rows, vocab);
      } else {
        at::Tensor tokens_b = SampleRows(logits_bv, c, gen).contiguous();
        tok.assign(tokens_b.data_ptr<int64_t>(), tokens_b.data_ptr<int64_t>() + rows);
      }
      std::vector<float> lp = TokenLogProbsFromLogits(logits, rows, vocab, tok, logprob_temperature);
      std::vector<int64_t> next_live, next_tokens, next_positions;
      for (int64_t r = 0; r < rows; ++r) {
        Generation& g = outs[live[r]];
        g.tokens.push_back(tok[r]);
        g.logprobs.push_back(lp[r]);
        bool stop = false;
        for (int64_t s : c.stop_ids) stop |= tok[r] == s;
        if (stop) {
          g.finish_reason = "stop";
        } else if (static_cast<int64_t>(g.tokens.size()) >= c.max_new_tokens) {
          g.finish_reason = "length";
        } else {
          next_live.push_back(live[r]);
          next_tokens.push_back(tok[r]);
          next_positions.push_back(cache.lengths[live[r]]);
        }
      }
      live = next_live;
      if (live.empty()) break;
      if (decoder) {
        hidden = decoder->Step(next_tokens, live).data();
        continue;
      }
      ModelInput step;
      step.tokens_t = at::tensor(next_tokens, i64);
      step.positions_t = at::tensor(next_positions, i64);
      step.layout.seq_lens.assign(live.size(), 1);
      cache.slot_of_segment = live;
      step.cache = &cache;
      hidden_bd = model_->Forward(step).hidden_td;
    }
  }
  if (c.deterministic_logprobs) {
    std::vector<std::vector<int64_t>> full(prompts);
    for (int64_t i = 0; i < batch; ++i) full[i].insert(full[i].end(), outs[i].tokens.begin(), outs[i].tokens.end());
    MOERL_ASSIGN_OR_RETURN(std::vector<std::vector<float>> scored,
                           ScoreSequences(*model_, full, prompt_lens, logprob_temperature));
    for (int64_t i = 0; i < batch; ++i) outs[i].logprobs = scored[i];
  }
  return outs;
}

absl::StatusOr<LogProbGap> GenerationEngine::MeasureGap(const std::vector<std::vector<int64_t>>& prompts,
                                                        const std::vector<Generation>& outputs,
                                                        double temperature) {
  if (prompts.size() != outputs.size()) {
    return absl::InvalidArgumentError(absl::StrCat("MeasureGap: ", prompts.size(), " prompts but ",
                                                   outputs.size(), " outputs"));
  }
  std::vector<std::vector<int64_t>> full(prompts);
  std::vector<int64_t> prompt_lens;
  for (size_t i = 0; i < prompts.size(); ++i) {
    prompt_lens.push_back(static_cast<int64_t>(prompts[i].size()));
    full[i].insert(full[i].end(), outputs[i].tokens.begin(), outputs[i].tokens.end());
  }
  MOERL_ASSIGN_OR_RETURN(std::vector<std::vector<float>> scored,
                         ScoreSequences(*model_, full, prompt_lens, temperature));
  LogProbGap gap;
  double ratio_sum = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (size_t t = 0; t < outputs[i].logprobs.size(); ++t) {
      const double diff = static_cast<double>(outputs[i].logprobs[t]) - scored[i][t];
      gap.max_abs = std::max(gap.max_abs, std::abs(diff));
      ratio_sum += std::exp(diff) - 1.0;
      ++gap.tokens;
    }
  }
  if (gap.tokens > 0) gap.mean_ratio_minus_one = ratio_sum / gap.tokens;
  return gap;
}

}  // namespace moerl
