// InferenceClient: what the rollout bridge asks of one inference server
// (generate, load weights from disk, pause / continue, health, abort), with
// three implementations:
//   SglangHttpClient  (sglang_http_client.h) SGLang's native HTTP API, which
//                     moerl's own server (rollout/server) speaks too
//   VllmHttpClient    (vllm_http_client.h) vLLM's OpenAI-compatible API plus
//                     AReaL's /areal_* control endpoints
//   FakeInferenceClient (fake_inference_client.h) in-process, for tests
//
//   std::unique_ptr<InferenceClient> server = MakeSglangHttpClient("10.0.0.5:30000", {});
//   Generation g;
//   GenerationRequest request{.input_ids = prompt, .sampling = params};
//   MOERL_ASSIGN_OR_RETURN(g, server->Generate(request, absl::Seconds(3600)));
//   if (g.finish == GenerationFinish::kAbort) { /* resubmit prompt + g.output_tokens */ }
//
// Status codes (every implementation): a server that cannot be reached,
// answers 5xx, answers bytes that are not the expected JSON, or does not
// answer within the timeout is kUnavailable or kDeadlineExceeded (worth a
// retry, maybe elsewhere); a 4xx answer is kInvalidArgument (the request is
// wrong: retrying cannot help); a call after Cancel() is kCancelled. Every
// message names the server's address.
//
// Threading: every method may be called from several threads at once;
// Cancel() interrupts calls in flight (used at shutdown).
#ifndef MOERL_ROLLOUT_INFERENCE_CLIENT_H_
#define MOERL_ROLLOUT_INFERENCE_CLIENT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rollout/sglang_api.h"

namespace moerl {

struct GenerationRequest {
  std::vector<int32_t> input_ids;
  SamplingParams sampling;  // SGLang's vocabulary; the vLLM client maps it
  bool return_routed_experts = false;
};

enum class GenerationFinish { kStop, kLength, kAbort };

// One answer to a GenerationRequest: the tokens sampled since the request's
// input_ids (possibly none, for an abort before prefill).
struct Generation {
  std::vector<int32_t> output_tokens;
  std::vector<float> output_logprobs;  // one per output token
  GenerationFinish finish = GenerationFinish::kStop;
  // The server's weight_version string ("default" when it was never told).
  std::string weight_version;
  // Router replay: the experts that chose each output token, one row of
  // routed_experts_width ids per output token (row i produced token i), or
  // empty when the server returned none.
  std::vector<int32_t> routed_experts;
  int64_t routed_experts_width = 0;
};

class InferenceClient {
 public:
  virtual ~InferenceClient() = default;

  // "host:port", for messages and logs.
  virtual const std::string& address() const = 0;

  virtual absl::StatusOr<Generation> Generate(const GenerationRequest& request,
                                              absl::Duration timeout) = 0;

  // The log-probability of input_ids[i + 1] given input_ids[0..i], for
  // every i (input_ids.size() - 1 values): the probe of docs/run_folder.md.
  virtual absl::StatusOr<std::vector<double>> ScoreTokens(const std::vector<int32_t>& input_ids,
                                                          absl::Duration timeout) = 0;

  // Load the Hugging Face folder `path`; the server reports `version` as its
  // weight_version afterwards.
  virtual absl::Status UpdateWeightsFromDisk(const std::string& path, int64_t version,
                                             absl::Duration timeout) = 0;

  // Pause: requests in flight end with finish kAbort and their partial
  // output; new ones wait until Continue.
  virtual absl::Status PauseGeneration(absl::Duration timeout) = 0;
  virtual absl::Status ContinueGeneration(absl::Duration timeout) = 0;
  // OK when the server is ready to generate.
  virtual absl::Status Health(absl::Duration timeout) = 0;
  // Aborts every request in flight on the server (all clients').
  virtual absl::Status AbortAll(absl::Duration timeout) = 0;

  // Interrupts this object's calls in flight and fails later ones.
  virtual void Cancel() = 0;
};

}  // namespace moerl

#endif  // MOERL_ROLLOUT_INFERENCE_CLIENT_H_
