// GenerationEngine: batched autoregressive generation on the trainer's
// Qwen3Model (same weights, same code), with a KV cache.
//
// Prompts of different lengths are prefilled together in one packed forward
// (each prompt its own segment and cache slot), then decoded one token per
// live sequence per step. Sampling per row: temperature 0 is greedy; else
// logits / T, then top-k, then top-p (nucleus) filtering, then a draw from a
// seeded generator (same seed + same inputs = same tokens). A sequence stops
// on a stop id (kept in the output, finish_reason "stop") or after
// max_new_tokens ("length").
//
// Speed: fp32 models run the prefill (LM head only at each prompt's last
// position) and the decode steps through the inference-only DecodeForward
// (decode_forward.h: weight-streaming GEMMs, no per-op dispatch); other
// dtypes run the training forward with the cache. The LM
// head runs once per step; greedy picks and log-probs are read from those
// logits on the host.
//
// Log-probs of sampled tokens use the trainer's formula (trainer/model/
// logprobs.h) under the temperature-scaled, unfiltered distribution (T = 1
// for greedy). In deterministic mode they are recomputed after generation by
// the training forward over the finished sequences (ScoreSequences), so they
// equal the trainer's bit for bit on CPU; otherwise they come from the decode
// steps and differ by float noise (GenerationResult::logprob_gap measures it).
//
//   GenerationEngine engine(model);
//   SamplingConfig cfg;  cfg.max_new_tokens = 64;  cfg.temperature = 1.0;  cfg.seed = 7;
//   MOERL_ASSIGN_OR_RETURN(std::vector<Generation> outs, engine.Generate({{1, 2, 3}, {4}}, cfg));
//   outs[0].tokens; outs[0].logprobs; outs[0].finish_reason;
//
// Threading: one Generate at a time per engine (it runs the shared model).
#ifndef MOERL_ROLLOUT_ENGINE_ENGINE_H_
#define MOERL_ROLLOUT_ENGINE_ENGINE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moerl {

class Qwen3Model;

struct SamplingConfig {
  int64_t max_new_tokens = 16;
  double temperature = 1.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  std::vector<int64_t> stop_ids;
  uint64_t seed = 0;
  bool deterministic_logprobs = false;  // rescore with the training forward
};

struct Generation {
  std::vector<int64_t> tokens;   // generated tokens only
  std::vector<float> logprobs;   // one per generated token
  std::string finish_reason;     // "stop" or "length"
};

// Max |engine - trainer| and mean(exp(engine - trainer) - 1) over all tokens.
struct LogProbGap {
  double max_abs = 0;
  double mean_ratio_minus_one = 0;
  int64_t tokens = 0;
};

class GenerationEngine {
 public:
  explicit GenerationEngine(std::shared_ptr<Qwen3Model> model);

  // InvalidArgument for empty prompts, out-of-vocabulary ids, bad sampling
  // parameters, or prompts + max_new_tokens beyond max_position_embeddings.
  absl::StatusOr<std::vector<Generation>> Generate(const std::vector<std::vector<int64_t>>& prompts,
                                                   const SamplingConfig& config);

  // The train/inference gap: rescoring `outputs` with the training forward.
  // InvalidArgument when prompts and outputs do not pair up or hold
  // out-of-vocabulary ids.
  absl::StatusOr<LogProbGap> MeasureGap(const std::vector<std::vector<int64_t>>& prompts,
                                        const std::vector<Generation>& outputs, double temperature);

 private:
  std::shared_ptr<Qwen3Model> model_;
};

}  // namespace moerl

#endif  // MOERL_ROLLOUT_ENGINE_ENGINE_H_
