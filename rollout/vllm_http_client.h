// VllmHttpClient: InferenceClient over vLLM's OpenAI-compatible server with
// the control endpoints AReaL adds to it for weight updates:
//   generate   POST /v1/completions {"prompt": [ids], "max_tokens", "min_tokens",
//              "temperature", "top_p", "top_k", "stop_token_ids", "logprobs": 0,
//              "return_tokens_as_token_ids": true, "skip_special_tokens": false}
//              tokens come back as "token:<id>" in choices[0].logprobs.tokens
//   probe      the same with "echo": true, "max_tokens": 1; the first
//              len(prompt) token_logprobs are the prompt's (the first null)
//   weights    POST /areal_update_weights {"model_path"}
//   pause      POST /areal_pause_generation, /areal_continue_generation
//   health     GET /health
// vLLM reports no weight version: Generation::weight_version is "" and the
// bridge stamps its own. Routed experts are SGLang-only. Thread-safe.
//
//   MOERL_ASSIGN_OR_RETURN(auto client, MakeVllmHttpClient("10.0.0.7:8000", {}));
#ifndef MOERL_ROLLOUT_VLLM_HTTP_CLIENT_H_
#define MOERL_ROLLOUT_VLLM_HTTP_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "rollout/inference_client.h"
#include "rollout/sglang_http_client.h"

namespace moerl {

absl::StatusOr<std::unique_ptr<InferenceClient>> MakeVllmHttpClient(
    const std::string& address, const HttpClientOptions& options);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_VLLM_HTTP_CLIENT_H_
