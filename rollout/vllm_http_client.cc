#include "rollout/vllm_http_client.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "nlohmann/json.hpp"
#include "rollout/http_caller.h"

namespace moerl {
namespace {

absl::Status Garbled(const std::string& address, const std::string& what) {
  return absl::UnavailableError(
      absl::StrCat("/v1/completions on ", address, ": unexpected reply: ", what));
}

// choices[0] of a completion reply, checked.
absl::StatusOr<nlohmann::json> FirstChoice(const std::string& address, const std::string& body) {
  const nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return Garbled(address, absl::StrCat("not a JSON object: '", Shorten(body), "'"));
  if (!json.contains("choices") || !json["choices"].is_array() || json["choices"].empty() ||
      !json["choices"][0].is_object()) {
    return Garbled(address, "no choices[0]");
  }
  const nlohmann::json& choice = json["choices"][0];
  if (!choice.contains("logprobs") || !choice["logprobs"].is_object() ||
      !choice["logprobs"].contains("tokens") || !choice["logprobs"]["tokens"].is_array() ||
      !choice["logprobs"].contains("token_logprobs") ||
      !choice["logprobs"]["token_logprobs"].is_array() ||
      choice["logprobs"]["tokens"].size() != choice["logprobs"]["token_logprobs"].size()) {
    return Garbled(address, "choices[0].logprobs.tokens / token_logprobs missing or unequal");
  }
  return choice;
}

class VllmHttpClient : public InferenceClient {
 public:
  VllmHttpClient(HostPort host_port, std::string address, HttpClientOptions options)
      : http_(std::move(host_port), std::move(address), std::move(options)) {}

  const std::string& address() const override { return http_.address(); }

  absl::StatusOr<Generation> Generate(const GenerationRequest& request,
                                      absl::Duration timeout) override {
    nlohmann::json body = Body(request.input_ids, request.sampling);
    MOERL_ASSIGN_OR_RETURN(std::string reply, http_.Post("/v1/completions", body.dump(), timeout));
    MOERL_ASSIGN_OR_RETURN(nlohmann::json choice, FirstChoice(address(), reply));
    Generation g;
    const nlohmann::json& tokens = choice["logprobs"]["tokens"];
    const nlohmann::json& logprobs = choice["logprobs"]["token_logprobs"];
    for (size_t i = 0; i < tokens.size(); ++i) {
      int32_t id = 0;
      if (!tokens[i].is_string() || !absl::StartsWith(tokens[i].get<std::string>(), "token:") ||
          !absl::SimpleAtoi(tokens[i].get<std::string>().substr(6), &id) ||
          !logprobs[i].is_number()) {
        return Garbled(address(), absl::StrCat("logprobs entry ", i,
                                               " is not \"token:<id>\" with a log-prob"));
      }
      g.output_tokens.push_back(id);
      g.output_logprobs.push_back(logprobs[i].get<float>());
    }
    const std::string finish =
        choice.contains("finish_reason") && choice["finish_reason"].is_string()
            ? choice["finish_reason"].get<std::string>()
            : "";
    if (finish == "stop") {
      g.finish = GenerationFinish::kStop;
    } else if (finish == "length") {
      g.finish = GenerationFinish::kLength;
    } else if (finish == "abort") {
      g.finish = GenerationFinish::kAbort;
    } else {
      return Garbled(address(), absl::StrCat("finish_reason '", finish, "'"));
    }
    return g;
  }

  absl::StatusOr<std::vector<double>> ScoreTokens(const std::vector<int32_t>& input_ids,
                                                  absl::Duration timeout) override {
    SamplingParams params;
    params.max_new_tokens = 1;
    params.temperature = 0;
    nlohmann::json body = Body(input_ids, params);
    body["echo"] = true;
    MOERL_ASSIGN_OR_RETURN(std::string reply, http_.Post("/v1/completions", body.dump(), timeout));
    MOERL_ASSIGN_OR_RETURN(nlohmann::json choice, FirstChoice(address(), reply));
    const nlohmann::json& logprobs = choice["logprobs"]["token_logprobs"];
    if (logprobs.size() < input_ids.size()) {
      return Garbled(address(), absl::StrCat("echo gave ", logprobs.size(), " log-probs for ",
                                             input_ids.size(), " prompt tokens"));
    }
    std::vector<double> out;
    for (size_t i = 1; i < input_ids.size(); ++i) {
      if (!logprobs[i].is_number()) return Garbled(address(), absl::StrCat("prompt log-prob ", i));
      out.push_back(logprobs[i].get<double>());
    }
    return out;
  }

  absl::Status UpdateWeightsFromDisk(const std::string& path, int64_t,
                                     absl::Duration timeout) override {
    return http_.Post("/areal_update_weights", nlohmann::json{{"model_path", path}}.dump(), timeout)
        .status();
  }
  absl::Status PauseGeneration(absl::Duration timeout) override {
    return http_.Post("/areal_pause_generation", "{}", timeout).status();
  }
  absl::Status ContinueGeneration(absl::Duration timeout) override {
    return http_.Post("/areal_continue_generation", "{}", timeout).status();
  }
  absl::Status Health(absl::Duration timeout) override {
    return http_.Get("/health", timeout).status();
  }
  absl::Status AbortAll(absl::Duration) override {
    return absl::UnimplementedError(absl::StrCat(
        "vLLM at ", address(), " has no abort-all endpoint; /areal_pause_generation aborts"));
  }
  void Cancel() override { http_.Cancel(); }

 private:
  static nlohmann::json Body(const std::vector<int32_t>& ids, const SamplingParams& p) {
    nlohmann::json body = {{"prompt", ids},
                           {"max_tokens", p.max_new_tokens},
                           {"min_tokens", p.min_new_tokens},
                           {"temperature", p.temperature},
                           {"top_p", p.top_p},
                           {"top_k", p.top_k},
                           {"stop_token_ids", p.stop_token_ids},
                           {"logprobs", 0},
                           {"return_tokens_as_token_ids", true},
                           {"skip_special_tokens", p.skip_special_tokens},
                           {"stream", false}};
    return body;
  }

  HttpCaller http_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<InferenceClient>> MakeVllmHttpClient(
    const std::string& address, const HttpClientOptions& options) {
  MOERL_ASSIGN_OR_RETURN(HostPort host_port, ParseHostPort(address));
  return std::unique_ptr<InferenceClient>(
      std::make_unique<VllmHttpClient>(std::move(host_port), address, options));
}

}  // namespace moerl
