// Scheduler: continuous batching on moerl's generation engine. One thread
// owns the model and a slotted KV cache (one slot per running sequence, each
// `context_length` positions: the memory budget); requests queue until a slot
// frees, are prefilled (those admitted together in one forward when
// batch_prefill, else each alone), then join the running batch, which decodes
// one token per live sequence per step through DecodeForward (fp32) or the
// training forward with the cache (other dtypes). A finished sequence leaves at once and its
// slot goes to the next queued request.
//
//   MOERL_ASSIGN_OR_RETURN(auto scheduler, Scheduler::Create(options));
//   SequenceRequest r;  r.prompt = {1, 2, 3};  r.params.max_new_tokens = 8;  r.params.temperature = 0;
//   MOERL_RETURN_IF_ERROR(scheduler->Check(r, "input_ids"));
//   std::future<SequenceResult> f = scheduler->Submit(std::move(r));
//   SequenceResult out = f.get();   // tokens, logprobs, finish reason
//
// Sampling per sequence is the engine's (rollout/engine/engine.h): greedy at
// temperature 0, else logits / T, top-k, top-p and a draw from the sequence's
// own generator seeded with `seed`, so the same seed and prompt give the same
// tokens and log-probs alone or batched, bit for bit, when batch_prefill is
// off and at most 16 sequences decode together (above that the GEMMs switch
// to MKL, whose summation order may move log-probs by float noise). Log-probs are the trainer's formula under the temperature
// (T = 1 when greedy); in deterministic mode they are recomputed per sequence
// by the training forward (ScoreSequences), bit-equal to the trainer's.
//
// Abort (by rid, all, or by a pause in "abort" mode) answers a running
// request with finish "abort" and the tokens so far, a queued one with
// SGLang's "Abort before prefill". A weight update swaps in a model loaded
// beside the running one; with abort_all the running requests are aborted
// first, else it waits for them (unless paused), as SGLang does.
//
// Threading: every public method is thread-safe; the futures are fulfilled
// on the scheduler thread. The destructor aborts everything and joins.
#ifndef MOERL_ROLLOUT_SERVER_SCHEDULER_H_
#define MOERL_ROLLOUT_SERVER_SCHEDULER_H_

#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/stage_timing.h"
#include "rollout/sglang_api.h"

namespace moerl {

struct SchedulerOptions {
  std::string model_path;        // an HF checkpoint folder
  std::string dtype = "float32";  // "float32" or "bfloat16"
  int64_t max_running_requests = 16;  // KV slots
  int64_t context_length = 0;         // positions per slot; 0: the model's max_position_embeddings, at most 8192
  bool deterministic = false;         // rescore log-probs with the training forward
  // Prefill the requests admitted together in one forward (one pass over the
  // weights: much faster for a burst, e.g. a GRPO group), at the price of
  // batch invariance: MKL's result for a row may depend on the other rows,
  // so log-probs can move by float noise (and a near-tie token flip)
  // compared with the same request alone. false: each prefill alone.
  bool batch_prefill = true;
  std::string weight_version = "default";
  // Tests only: sleep this long after each decode step, so that control
  // calls (pause, abort, weight update) land mid-generation on a tiny model.
  int64_t decode_step_delay_us = 0;
  // Optional, borrowed: the scheduler thread's idle time (nothing queued, or
  // paused) as wait_input, its forward steps as compute, weight loads as
  // transport, and a "generated_tokens" count (docs/pipeline.md, "Stage timing").
  StageTiming* timing = nullptr;
};

struct SequenceRequest {
  std::vector<int64_t> prompt;
  SamplingParams params;
  bool return_logprob = false;
  int64_t logprob_start_len = -1;
  bool return_routed_experts = false;
  std::string rid;
  uint64_t seed = 0;
};

struct SequenceResult {
  std::string rid;
  std::vector<int64_t> tokens;    // generated tokens, a matched stop id included
  std::vector<float> logprobs;    // one per token (when return_logprob)
  // When return_logprob and logprob_start_len >= 0: log-probs of prompt
  // tokens logprob_start_len + 1 .. end (the first prompt position has none).
  std::vector<float> input_logprobs;
  std::string finish_type;        // "stop", "length" or "abort"
  std::optional<int64_t> matched;  // stop: the id
  std::string abort_message;
  bool aborted_before_prefill = false;
  std::string weight_version;      // of the weights that produced the last token
  // [prompt + tokens - 1, moe_layers * top_k] when return_routed_experts.
  std::vector<int32_t> routed_experts;
  int64_t prompt_tokens = 0;
  double e2e_latency_s = 0;
};

struct ModelInfo {
  std::string model_path;
  std::string weight_version;
  int64_t vocab_size = 0;
  int64_t moe_layers = 0;
  int64_t top_k = 0;
  int64_t context_length = 0;
  int64_t max_running_requests = 0;
  std::string dtype;
  bool deterministic = false;
};

enum class PauseMode { kAbort, kInPlace };

class Scheduler {
 public:
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(const SchedulerOptions& options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // InvalidArgument naming `where` (e.g. "input_ids[2]") for an empty
  // prompt, an out-of-vocabulary id, or prompt + max_new_tokens beyond the
  // context length.
  absl::Status Check(const SequenceRequest& request, const std::string& where) const;
  // The request must pass Check.
  std::future<SequenceResult> Submit(SequenceRequest request);

  // Returns whether a request with this rid was queued or running.
  bool Abort(const std::string& rid);
  void AbortAll(const std::string& message);
  void Pause(PauseMode mode);
  void Continue();
  bool paused() const;

  // Loads `model_path` (same architecture), swaps it in, sets the weight
  // version (`version`, else N when the folder is named v<N>, else the old
  // one + 1). Returns the number of requests it aborted.
  absl::StatusOr<int64_t> UpdateWeightsFromDisk(const std::string& model_path, const std::optional<std::string>& version,
                                                bool abort_all_requests);

  ModelInfo Info() const;
  int64_t running() const;
  int64_t queued() const;

  class Impl;

 private:
  explicit Scheduler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "v12" -> "12"; nullopt for other folder names (trailing slashes ignored).
std::optional<std::string> VersionFromFolderName(const std::string& path);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_SERVER_SCHEDULER_H_
