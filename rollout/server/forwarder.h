// Forwarder: one forward of rows of several KV-cache slots (whole prompts,
// or one new token per running sequence) for the server's scheduler:
// DecodeForward (rollout/engine/decode_forward.h) for fp32 models, the
// training forward with the cache for other dtypes. Also the engine's
// per-row sampling and log-prob formula, so the server's numbers equal the
// in-process GenerationEngine's.
//
//   Forwarder f(model, &cache);
//   std::vector<int32_t> routes;
//   f.Step(tokens, slots, &routes);         // rows of one slot consecutive
//   f.Logits({row}, logits_v.data());       // fp32 logits of chosen rows
//   int64_t t = SampleRow(logits_1v, params, gen);
//
// Threading: one caller (the scheduler thread); the model and cache must
// outlive it and not change while it lives.
#ifndef MOERL_ROLLOUT_SERVER_FORWARDER_H_
#define MOERL_ROLLOUT_SERVER_FORWARDER_H_

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "rollout/sglang_api.h"
#include "trainer/model/model.h"

namespace moerl {

class DecodeForward;

class Forwarder {
 public:
  Forwarder(Qwen3Model& model, KvCache* cache);
  ~Forwarder();

  // Rows of one slot are consecutive positions after the slot's cached
  // length. Advances the lengths. Fills routes [rows, moe_layers * top_k]
  // (the experts each row chose, in descending router probability).
  void Step(const std::vector<int64_t>& tokens, const std::vector<int64_t>& slots, std::vector<int32_t>* routes);

  // logits_nv (fp32, [rows.size(), vocab]) of the given rows of the last Step.
  void Logits(const std::vector<int64_t>& rows, float* logits_nv);

 private:
  Qwen3Model& model_;
  KvCache* cache_;
  std::unique_ptr<DecodeForward> decoder_;
  int64_t rows_ = 0;
  const std::vector<float>* hidden_ = nullptr;
  at::Tensor hidden_td_;
  std::vector<float> gathered_;
};

// The engine's sampling (engine.cc SampleRows) for one row [1, v]:
// logits / T, top-k (<= 0 off), top-p, a draw from `gen`. T > 0.
int64_t SampleRow(const at::Tensor& logits_1v, const SamplingParams& params, at::Generator& gen);

// The engine's log-prob (engine.cc TokenLogProbsFromLogits) of `token`
// under logits / temperature.
float TokenLogProb(const float* logits, int64_t vocab, int64_t token, double temperature);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_SERVER_FORWARDER_H_
