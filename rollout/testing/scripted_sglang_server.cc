#include "rollout/testing/scripted_sglang_server.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "rollout/sglang_api.h"

namespace moerl {

ScriptedServer::ScriptedServer() = default;
ScriptedServer::~ScriptedServer() { Stop(); }

bool ScriptedServer::Start(int port) {
  server_ = std::make_unique<httplib::Server>();
  server_->Get("/health",
               [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  server_->Post("/generate", [this](const httplib::Request& req, httplib::Response& res) {
    Generate(req, res);
  });
  server_->Post("/update_weights_from_disk", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
    absl::StatusOr<UpdateWeightsFromDiskRequest> r = ParseUpdateWeightsFromDiskRequest(req.body);
    absl::MutexLock lock(&mu_);
    ++updates_;
    if (r.ok() && r->weight_version.has_value()) version_ = *r->weight_version;
    UpdateWeightsFromDiskResponse out;
    out.success = r.ok();
    out.message = r.ok() ? "ok" : std::string(r.status().message());
    res.set_content(UpdateWeightsFromDiskResponseToJson(out).dump(), "application/json");
  });
  for (const char* path : {"/pause_generation", "/continue_generation", "/abort_request"}) {
    server_->Post(path, [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"message":"ok","status":"ok"})", "application/json");
    });
  }
  if (port == 0) {
    port_ = server_->bind_to_any_port("127.0.0.1");
  } else if (server_->bind_to_port("127.0.0.1", port)) {
    port_ = port;
  } else {
    return false;
  }
  if (port_ <= 0) return false;
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  while (!server_->is_running()) absl::SleepFor(absl::Milliseconds(1));
  return true;
}

void ScriptedServer::Stop() {
  if (server_ == nullptr) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
  absl::MutexLock lock(&mu_);
  stopping_ = false;
}

void ScriptedServer::Script(std::vector<Fault> faults) {
  absl::MutexLock lock(&mu_);
  script_.assign(faults.begin(), faults.end());
}
std::string ScriptedServer::address() const { return absl::StrCat("127.0.0.1:", port_); }

int64_t ScriptedServer::generates() {
  absl::MutexLock lock(&mu_);
  return generates_;
}
int64_t ScriptedServer::updates() {
  absl::MutexLock lock(&mu_);
  return updates_;
}

void ScriptedServer::Generate(const httplib::Request& req, httplib::Response& res) {
  Fault fault = Fault::kNone;
  std::string version;
  // Faults hit generation, not the probe (logprob_start_len 0) of a reload.
  const bool probe = req.body.find("\"logprob_start_len\":0") != std::string::npos;
  {
    absl::MutexLock lock(&mu_);
    ++generates_;
    if (!script_.empty() && !probe) {
      fault = script_.front();
      script_.pop_front();
    }
    version = version_;
  }
  switch (fault) {
    case Fault::k500:
      res.status = 500;
      res.set_content("Internal Server Error", "text/plain");
      return;
    case Fault::k400:
      res.status = 400;
      res.set_content(ErrorBody("input_ids[0] is out of range", 400).dump(), "application/json");
      return;
    case Fault::kGarbage:
      res.set_content("<html>502 Bad Gateway</html>", "application/json");
      return;
    case Fault::kHang: {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&stopping), absl::Seconds(3));
      res.set_content("{}", "application/json");
      return;
    }
    case Fault::kTruncated: {
      // Promise a long body, send a few bytes, drop the connection.
      res.set_content_provider(1000, "application/json",
                               [](size_t offset, size_t, httplib::DataSink& sink) {
                                 if (offset == 0) sink.write("{\"text\":", 8);
                                 return false;
                               });
      return;
    }
    case Fault::kNone:
      break;
  }
  absl::StatusOr<GenerateRequest> parsed = ParseGenerateRequest(req.body);
  if (!parsed.ok()) {
    res.status = 400;
    res.set_content(ErrorBody(std::string(parsed.status().message()), 400).dump(),
                    "application/json");
    return;
  }
  const std::vector<int64_t>& input = parsed->input_ids[0];
  const SamplingParams& params = parsed->ParamsFor(0);
  GenerateResponse out;
  out.meta_info.weight_version = version;
  out.meta_info.prompt_tokens = static_cast<int64_t>(input.size());
  out.meta_info.finish_reason = FinishReason{"length", std::nullopt, params.max_new_tokens, ""};
  std::vector<TokenLogprob> logprobs;
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < params.max_new_tokens; ++i) {
    const int64_t token = 10 + static_cast<int64_t>((input.size() + i) % 50);
    ids.push_back(token);
    logprobs.push_back({-0.5, token});
  }
  out.output_ids = ids;
  out.meta_info.completion_tokens = static_cast<int64_t>(ids.size());
  out.meta_info.output_token_logprobs = logprobs;
  if (parsed->logprob_start_len == 0) {
    std::vector<TokenLogprob> in;
    for (size_t i = 0; i < input.size(); ++i) {
      in.push_back({i == 0 ? std::nullopt : std::optional<double>(ProbeValue(input[i])), input[i]});
    }
    out.meta_info.input_token_logprobs = in;
  }
  if (parsed->return_routed_experts) {
    RoutedExperts experts;
    experts.cols = 2;
    experts.rows = static_cast<int64_t>(input.size() + ids.size()) - 1;
    for (int64_t r = 0; r < experts.rows; ++r) {
      experts.ids.push_back(static_cast<int32_t>(r % 4));
      experts.ids.push_back(static_cast<int32_t>(r));
    }
    out.meta_info.routed_experts = EncodeRoutedExperts(experts);
  }
  res.set_content(GenerateResponsesToJson({out}, parsed->batched).dump(), "application/json");
}

}  // namespace moerl
