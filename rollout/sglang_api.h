// The request and response bodies of SGLang's native HTTP API that moerl
// speaks (docs/server.md), as structs with JSON both ways.
// The inference server (rollout/server) parses requests and writes responses
// with this code; the rollout bridge's client writes requests and parses
// responses with the same code, so the two agree by construction.
//
//   GenerateRequest req;
//   req.input_ids = {{151644, 872, 198}};
//   req.sampling_params = {SamplingParams{}};
//   req.sampling_params[0].max_new_tokens = 64;
//   req.return_logprob = true;
//   std::string body = GenerateRequestToJson(req).dump();
//   ...
//   MOERL_ASSIGN_OR_RETURN(std::vector<GenerateResponse> outs, ParseGenerateResponses(reply_body));
//   outs[0].meta_info.output_token_logprobs[t].token_id;
//
// Parsing rules. Requests are strict: an unknown field, a wrong type or a
// value out of range is InvalidArgument naming the field path
// ("sampling_params.top_p must be in (0, 1], found 1.5"). Fields that AReaL
// sends but moerl does not implement are accepted only at their neutral value
// (stream=false, n=1, top_logprobs_num=0, frequency_penalty=0, image_data=null,
// lora_path=null, stop=[]), so a request never silently means something else.
// Responses are lenient about keys (SGLang adds keys across versions; clients
// must ignore those they do not know) but strict about the types of the keys
// they read.
//
// Shapes that differ from SGLang: see docs/server.md. In short,
// `routed_experts` is SGLang's base64 of little-endian int32 with
// prompt_tokens + completion_tokens - 1 rows of num_moe_layers * top_k ids
// (one row per forwarded position; rows prompt_tokens-1 .. end are the ones
// that chose each output token, the rows a Trajectory keeps).
//
// Threading: plain values and pure functions.
#ifndef MOERL_ROLLOUT_SGLANG_API_H_
#define MOERL_ROLLOUT_SGLANG_API_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace moerl {

// SGLang's SamplingParams subset (docs/basic_usage/sampling_params.md).
struct SamplingParams {
  int64_t max_new_tokens = 128;  // >= 0; 0 scores the prompt only
  int64_t min_new_tokens = 0;    // stop ids and EOS are ignored before this many
  double temperature = 1.0;      // 0 = greedy
  double top_p = 1.0;            // (0, 1]
  int64_t top_k = -1;            // -1 (or 0) = off
  std::vector<int64_t> stop_token_ids;
  bool ignore_eos = false;
  bool skip_special_tokens = true;
  // SGLang's per-request seed (newer versions); unset: the server derives one
  // from sglang.random_seed and the request's arrival number.
  std::optional<int64_t> sampling_seed;

  bool operator==(const SamplingParams& o) const;
};

struct GenerateRequest {
  // One row per request. `batched` is true when the JSON held [[int]] (the
  // response is then a JSON array), false for [int] (exactly one row).
  std::vector<std::vector<int64_t>> input_ids;
  bool batched = false;
  // One entry shared by every row, or exactly one per row.
  std::vector<SamplingParams> sampling_params = {SamplingParams{}};
  bool return_logprob = false;
  int64_t logprob_start_len = -1;  // -1: output log-probs only
  bool return_routed_experts = false;
  // Empty: the server picks ids. Else one per row (a single string given for
  // a batch becomes "<rid>_<i>", as in SGLang).
  std::vector<std::string> rid;

  const SamplingParams& ParamsFor(size_t row) const {
    return sampling_params.size() == 1 ? sampling_params[0] : sampling_params[row];
  }
};

// [logprob, token_id, text] with text always null; logprob is null for the
// first prompt position of input_token_logprobs.
struct TokenLogprob {
  std::optional<double> logprob;
  int64_t token_id = 0;
  bool operator==(const TokenLogprob& o) const { return logprob == o.logprob && token_id == o.token_id; }
};

struct FinishReason {
  std::string type;                // "stop", "length" or "abort"
  std::optional<int64_t> matched;  // stop: the stop token id (null when EOS was not a token)
  std::optional<int64_t> length;   // length: max_new_tokens
  std::string message;             // abort: why ("Abort before prefill", "aborted by /abort_request")
};

struct MetaInfo {
  std::string id;
  std::optional<FinishReason> finish_reason;  // null only in unfinished (streaming) chunks
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t total_retractions = 0;
  std::string weight_version = "default";
  // Present when return_logprob was set (absent in an "Abort before prefill" reply).
  std::optional<std::vector<TokenLogprob>> output_token_logprobs;
  // Present when return_logprob and logprob_start_len >= 0: one entry per
  // prompt position from logprob_start_len on, the first with a null logprob.
  std::optional<std::vector<TokenLogprob>> input_token_logprobs;
  std::optional<double> e2e_latency;  // seconds
  std::optional<std::string> routed_experts;  // base64 int32, see above
};

struct GenerateResponse {
  std::optional<std::string> text;               // moerl's server has no detokenizer: absent
  std::optional<std::vector<int64_t>> output_ids;  // absent only before prefill
  MetaInfo meta_info;
};

// Routed experts decoded: rows x (moe_layers * top_k) ids, row-major.
struct RoutedExperts {
  int64_t rows = 0;
  int64_t cols = 0;  // moe_layers * top_k
  std::vector<int32_t> ids;
};

struct UpdateWeightsFromDiskRequest {
  std::string model_path;
  bool abort_all_requests = false;
  std::optional<std::string> weight_version;
  std::optional<std::string> load_format;  // accepted; only null/"auto"/"safetensors" work
  bool flush_cache = true;
};

struct UpdateWeightsFromDiskResponse {
  bool success = false;
  std::string message;
  int64_t num_paused_requests = 0;
};

struct AbortRequest {
  std::string rid;
  bool abort_all = false;
};

// Requests.
nlohmann::json GenerateRequestToJson(const GenerateRequest& request);
absl::StatusOr<GenerateRequest> ParseGenerateRequest(const nlohmann::json& body);
absl::StatusOr<GenerateRequest> ParseGenerateRequest(const std::string& body);

nlohmann::json UpdateWeightsFromDiskRequestToJson(const UpdateWeightsFromDiskRequest& request);
absl::StatusOr<UpdateWeightsFromDiskRequest> ParseUpdateWeightsFromDiskRequest(const std::string& body);

nlohmann::json AbortRequestToJson(const AbortRequest& request);
absl::StatusOr<AbortRequest> ParseAbortRequest(const std::string& body);

// Responses. A batch request is answered by a JSON array of responses, a
// single one by one object; ParseGenerateResponses accepts either.
nlohmann::json GenerateResponseToJson(const GenerateResponse& response);
nlohmann::json GenerateResponsesToJson(const std::vector<GenerateResponse>& responses, bool batched);
absl::StatusOr<GenerateResponse> ParseGenerateResponse(const nlohmann::json& body);
absl::StatusOr<std::vector<GenerateResponse>> ParseGenerateResponses(const std::string& body);

nlohmann::json UpdateWeightsFromDiskResponseToJson(const UpdateWeightsFromDiskResponse& response);
absl::StatusOr<UpdateWeightsFromDiskResponse> ParseUpdateWeightsFromDiskResponse(const std::string& body);

// SGLang's error body: {"object":"error","message":...,"type":"Bad Request","code":400}.
nlohmann::json ErrorBody(const std::string& message, int code);

// routed_experts <-> base64 of little-endian int32.
std::string EncodeRoutedExperts(const RoutedExperts& experts);
// cols must divide the decoded count; InvalidArgument on bad base64.
absl::StatusOr<RoutedExperts> DecodeRoutedExperts(const std::string& base64, int64_t cols);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_SGLANG_API_H_
