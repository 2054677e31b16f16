#include "rollout/sglang_http_client.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "rollout/http_caller.h"

namespace moerl {
namespace {

absl::Status Garbled(const std::string& address, const std::string& path,
                     const absl::Status& status) {
  // A reply that is not what SGLang sends is the server's fault (a proxy's
  // error page, a crash mid-write): worth a retry, so kUnavailable.
  return absl::UnavailableError(
      absl::StrCat(path, " on ", address, ": unexpected reply: ", status.message()));
}

class SglangHttpClient : public InferenceClient {
 public:
  SglangHttpClient(HostPort host_port, std::string address, HttpClientOptions options)
      : timing_(options.timing), http_(std::move(host_port), std::move(address), std::move(options)) {}

  const std::string& address() const override { return http_.address(); }

  absl::StatusOr<Generation> Generate(const GenerationRequest& request,
                                      absl::Duration timeout) override {
    GenerateRequest body;
    body.input_ids = {std::vector<int64_t>(request.input_ids.begin(), request.input_ids.end())};
    body.sampling_params = {request.sampling};
    body.return_logprob = true;
    body.return_routed_experts = request.return_routed_experts;
    std::string json;
    {
      ScopedStageTimer t(timing_, TimeBucket::kTransport);
      json = GenerateRequestToJson(body).dump();
    }
    MOERL_ASSIGN_OR_RETURN(std::string reply, http_.Post("/generate", json, timeout));
    absl::StatusOr<std::vector<GenerateResponse>> parsed;
    {
      ScopedStageTimer t(timing_, TimeBucket::kTransport);
      parsed = ParseGenerateResponses(reply);
    }
    if (!parsed.ok()) return Garbled(address(), "/generate", parsed.status());
    if (parsed->size() != 1) {
      return Garbled(address(), "/generate",
                     absl::InvalidArgumentError(
                         absl::StrCat("expected one response, found ", parsed->size())));
    }
    absl::StatusOr<Generation> generation = ToGeneration((*parsed)[0], request.input_ids.size());
    if (timing_ != nullptr && generation.ok()) {
      timing_->Count("generated_tokens", static_cast<int64_t>(generation->output_tokens.size()));
    }
    return generation;
  }

  absl::StatusOr<std::vector<double>> ScoreTokens(const std::vector<int32_t>& input_ids,
                                                  absl::Duration timeout) override {
    GenerateRequest body;
    body.input_ids = {std::vector<int64_t>(input_ids.begin(), input_ids.end())};
    SamplingParams params;
    params.max_new_tokens = 0;
    body.sampling_params = {params};
    body.return_logprob = true;
    body.logprob_start_len = 0;
    MOERL_ASSIGN_OR_RETURN(std::string reply,
                           http_.Post("/generate", GenerateRequestToJson(body).dump(), timeout));
    absl::StatusOr<std::vector<GenerateResponse>> parsed = ParseGenerateResponses(reply);
    if (!parsed.ok()) return Garbled(address(), "/generate (probe)", parsed.status());
    const auto& input = parsed->at(0).meta_info.input_token_logprobs;
    if (parsed->size() != 1 || !input.has_value() || input->size() != input_ids.size()) {
      return Garbled(address(), "/generate (probe)",
                     absl::InvalidArgumentError(absl::StrCat(
                         "expected ", input_ids.size(), " input_token_logprobs, found ",
                         input.has_value() ? input->size() : 0)));
    }
    std::vector<double> logprobs;
    for (size_t i = 1; i < input->size(); ++i) {
      if (!(*input)[i].logprob.has_value()) {
        return Garbled(
            address(), "/generate (probe)",
            absl::InvalidArgumentError(absl::StrCat("input_token_logprobs[", i, "] is null")));
      }
      logprobs.push_back(*(*input)[i].logprob);
    }
    return logprobs;
  }

  absl::Status UpdateWeightsFromDisk(const std::string& path, int64_t version,
                                     absl::Duration timeout) override {
    UpdateWeightsFromDiskRequest request;
    request.model_path = path;
    request.abort_all_requests = true;
    request.weight_version = absl::StrCat(version);
    absl::StatusOr<std::string> reply = http_.Post(
        "/update_weights_from_disk", UpdateWeightsFromDiskRequestToJson(request).dump(), timeout);
    if (!reply.ok()) return reply.status();
    absl::StatusOr<UpdateWeightsFromDiskResponse> parsed =
        ParseUpdateWeightsFromDiskResponse(*reply);
    if (!parsed.ok()) return Garbled(address(), "/update_weights_from_disk", parsed.status());
    if (!parsed->success) {
      return absl::UnavailableError(absl::StrCat("/update_weights_from_disk ", path, " on ",
                                                 address(), " failed: ", parsed->message));
    }
    return absl::OkStatus();
  }

  absl::Status PauseGeneration(absl::Duration timeout) override {
    return http_.Post("/pause_generation", R"({"mode":"abort"})", timeout).status();
  }
  absl::Status ContinueGeneration(absl::Duration timeout) override {
    return http_.Post("/continue_generation", "{}", timeout).status();
  }
  absl::Status Health(absl::Duration timeout) override {
    return http_.Get("/health", timeout).status();
  }
  absl::Status AbortAll(absl::Duration timeout) override {
    return http_
        .Post("/abort_request", AbortRequestToJson({.rid = "", .abort_all = true}).dump(), timeout)
        .status();
  }
  void Cancel() override { http_.Cancel(); }

 private:
  absl::StatusOr<Generation> ToGeneration(const GenerateResponse& response, size_t prompt_len) {
    Generation g;
    const MetaInfo& meta = response.meta_info;
    if (!meta.finish_reason.has_value()) {
      return Garbled(address(), "/generate",
                     absl::InvalidArgumentError("meta_info.finish_reason is null"));
    }
    const std::string& type = meta.finish_reason->type;
    if (type == "stop") {
      g.finish = GenerationFinish::kStop;
    } else if (type == "length") {
      g.finish = GenerationFinish::kLength;
    } else if (type == "abort") {
      g.finish = GenerationFinish::kAbort;
    } else {
      return Garbled(address(), "/generate",
                     absl::InvalidArgumentError(absl::StrCat("meta_info.finish_reason.type '", type,
                                                             "' is not stop/length/abort")));
    }
    g.weight_version = meta.weight_version;
    // An abort before prefill has no logprob arrays: zero tokens.
    if (meta.output_token_logprobs.has_value()) {
      for (const TokenLogprob& entry : *meta.output_token_logprobs) {
        g.output_tokens.push_back(static_cast<int32_t>(entry.token_id));
        g.output_logprobs.push_back(static_cast<float>(entry.logprob.value_or(0.0)));
      }
    } else if (g.finish != GenerationFinish::kAbort) {
      return Garbled(address(), "/generate",
                     absl::InvalidArgumentError(
                         "meta_info.output_token_logprobs is missing (return_logprob was sent)"));
    }
    if (meta.routed_experts.has_value() && !g.output_tokens.empty()) {
      // rows = prompt + completion - 1 forwarded positions; the last
      // completion rows chose the output tokens.
      const int64_t rows = static_cast<int64_t>(prompt_len + g.output_tokens.size()) - 1;
      absl::StatusOr<RoutedExperts> flat = DecodeRoutedExperts(*meta.routed_experts, 1);
      if (!flat.ok()) return Garbled(address(), "/generate", flat.status());
      if (rows <= 0 || flat->ids.size() % rows != 0) {
        return Garbled(address(), "/generate",
                       absl::InvalidArgumentError(
                           absl::StrCat("meta_info.routed_experts holds ", flat->ids.size(),
                                        " ids, not a multiple of ", rows, " rows")));
      }
      g.routed_experts_width = static_cast<int64_t>(flat->ids.size()) / rows;
      const size_t first = (prompt_len - 1) * g.routed_experts_width;
      g.routed_experts.assign(flat->ids.begin() + first, flat->ids.end());
    }
    return g;
  }

  StageTiming* timing_;
  HttpCaller http_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<InferenceClient>> MakeSglangHttpClient(
    const std::string& address, const HttpClientOptions& options) {
  MOERL_ASSIGN_OR_RETURN(HostPort host_port, ParseHostPort(address));
  return std::unique_ptr<InferenceClient>(
      std::make_unique<SglangHttpClient>(std::move(host_port), address, options));
}

}  // namespace moerl
