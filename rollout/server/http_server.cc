#include "rollout/server/http_server.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "nlohmann/json.hpp"

namespace moerl {
namespace {

using json = nlohmann::json;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void Reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void BadRequest(httplib::Response& res, const absl::Status& status) {
  Reply(res, 400, ErrorBody(std::string(status.message()), 400));
}

GenerateResponse ToResponse(const SequenceResult& r, const GenerateRequest& req) {
  GenerateResponse out;
  MetaInfo& m = out.meta_info;
  m.id = r.rid;
  m.weight_version = r.weight_version;
  m.e2e_latency = r.e2e_latency_s;
  FinishReason f;
  f.type = r.finish_type;
  if (r.finish_type == "stop") f.matched = r.matched;
  if (r.finish_type == "abort") f.message = r.abort_message;
  m.finish_reason = f;
  if (r.aborted_before_prefill) {
    out.text = "";
    return out;  // SGLang's reduced shape: no output_ids, no log-probs
  }
  out.output_ids = r.tokens;
  m.prompt_tokens = r.prompt_tokens;
  m.completion_tokens = static_cast<int64_t>(r.tokens.size());
  if (r.finish_type == "length") m.finish_reason->length = static_cast<int64_t>(r.tokens.size());
  if (req.return_logprob) {
    std::vector<TokenLogprob> lps;
    for (size_t i = 0; i < r.tokens.size(); ++i) lps.push_back({static_cast<double>(r.logprobs[i]), r.tokens[i]});
    m.output_token_logprobs = lps;
  }
  return out;
}

}  // namespace

SglangHttpServer::SglangHttpServer(Scheduler* scheduler, int64_t threads, uint64_t seed,
                                   StageTiming* timing)
    : scheduler_(scheduler), http_(std::make_unique<httplib::Server>()), seed_(seed), timing_(timing) {
  const size_t n = static_cast<size_t>(threads);
  http_->new_task_queue = [n] { return new httplib::ThreadPool(n); };
  http_->set_payload_max_length(256ull << 20);
  Routes();
}

SglangHttpServer::~SglangHttpServer() { Stop(); }

absl::StatusOr<int> SglangHttpServer::Bind(const std::string& host, int port) {
  if (port == 0) {
    const int bound = http_->bind_to_any_port(host);
    if (bound <= 0) return absl::UnavailableError(absl::StrCat("cannot bind ", host, " to any port"));
    return bound;
  }
  if (!http_->bind_to_port(host, port)) {
    return absl::UnavailableError(absl::StrCat("cannot bind ", host, ":", port, " (in use? try server.port=0)"));
  }
  return port;
}

absl::Status SglangHttpServer::Serve() {
  if (!http_->listen_after_bind()) return absl::InternalError("the HTTP server stopped listening unexpectedly");
  return absl::OkStatus();
}

void SglangHttpServer::Stop() {
  if (http_) http_->stop();
}

void SglangHttpServer::Routes() {
  auto generate = [this](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<GenerateRequest> parsed;
    {
      ScopedStageTimer t(timing_, TimeBucket::kTransport);
      parsed = ParseGenerateRequest(req.body);
    }
    if (!parsed.ok()) return BadRequest(res, parsed.status());
    const GenerateRequest& g = *parsed;
    const ModelInfo info = scheduler_->Info();
    std::vector<SequenceRequest> seqs;
    for (size_t i = 0; i < g.input_ids.size(); ++i) {
      SequenceRequest s;
      s.prompt = g.input_ids[i];
      s.params = g.ParamsFor(i);
      s.return_logprob = g.return_logprob;
      s.logprob_start_len = g.logprob_start_len;
      s.return_routed_experts = g.return_routed_experts;
      const uint64_t n = request_counter_++;
      s.rid = g.rid.empty() ? absl::StrCat("moerl-", seed_ % 100000, "-", n) : g.rid[i];
      s.seed = s.params.sampling_seed ? static_cast<uint64_t>(*s.params.sampling_seed) : SplitMix64(seed_ ^ SplitMix64(n));
      const std::string where = g.batched ? absl::StrCat("input_ids[", i, "]") : "input_ids";
      if (absl::Status st = scheduler_->Check(s, where); !st.ok()) return BadRequest(res, st);
      if (s.return_routed_experts && info.moe_layers == 0) {
        return BadRequest(res, absl::InvalidArgumentError("return_routed_experts: the served model has no MoE layers"));
      }
      seqs.push_back(std::move(s));
    }
    std::vector<std::future<SequenceResult>> futures;
    for (SequenceRequest& s : seqs) futures.push_back(scheduler_->Submit(std::move(s)));
    std::vector<GenerateResponse> out;
    for (size_t i = 0; i < futures.size(); ++i) {
      const SequenceResult r = futures[i].get();
      GenerateResponse resp = ToResponse(r, g);
      if (g.return_logprob && g.logprob_start_len >= 0 && !r.aborted_before_prefill) {
        const std::vector<int64_t>& prompt = g.input_ids[i];
        std::vector<TokenLogprob> in{{std::nullopt, prompt[g.logprob_start_len]}};
        for (size_t j = 0; j < r.input_logprobs.size(); ++j) {
          in.push_back({static_cast<double>(r.input_logprobs[j]), prompt[g.logprob_start_len + 1 + j]});
        }
        resp.meta_info.input_token_logprobs = in;
      }
      if (g.return_routed_experts && !r.aborted_before_prefill) {
        const int64_t cols = info.moe_layers * info.top_k;
        resp.meta_info.routed_experts = EncodeRoutedExperts(
            {cols == 0 ? 0 : static_cast<int64_t>(r.routed_experts.size()) / cols, cols, r.routed_experts});
      }
      out.push_back(std::move(resp));
    }
    ScopedStageTimer t(timing_, TimeBucket::kTransport);
    Reply(res, 200, GenerateResponsesToJson(out, g.batched));
  };
  http_->Post("/generate", generate);
  http_->Put("/generate", generate);

  http_->Get("/health", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });

  http_->Get("/health_generate", [this](const httplib::Request&, httplib::Response& res) {
    if (scheduler_->paused()) {  // a generation would wait for /continue_generation
      res.status = 200;
      return;
    }
    SequenceRequest s;
    s.prompt = {0};
    s.params.max_new_tokens = 1;
    s.params.temperature = 0;
    s.rid = absl::StrCat("health-", request_counter_++);
    const std::string rid = s.rid;
    std::future<SequenceResult> f = scheduler_->Submit(std::move(s));
    if (f.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      scheduler_->Abort(rid);
      res.status = 503;
      return;
    }
    res.status = f.get().tokens.size() == 1 ? 200 : 503;
  });

  http_->Get("/get_model_info", [this](const httplib::Request&, httplib::Response& res) {
    const ModelInfo i = scheduler_->Info();
    Reply(res, 200,
          json{{"model_path", i.model_path},
               {"tokenizer_path", i.model_path},
               {"is_generation", true},
               {"preferred_sampling_params", nullptr},
               {"weight_version", i.weight_version},
               {"vocab_size", i.vocab_size},
               {"num_moe_layers", i.moe_layers},
               {"num_experts_per_tok", i.top_k}});
  });

  http_->Get("/get_server_info", [this](const httplib::Request&, httplib::Response& res) {
    const ModelInfo i = scheduler_->Info();
    Reply(res, 200,
          json{{"model_path", i.model_path},
               {"dtype", i.dtype},
               {"context_length", i.context_length},
               {"max_running_requests", i.max_running_requests},
               {"max_total_num_tokens", i.context_length * i.max_running_requests},
               {"max_req_input_len", i.context_length},
               {"deterministic", i.deterministic},
               {"weight_version", i.weight_version},
               {"num_running_reqs", scheduler_->running()},
               {"num_queued_reqs", scheduler_->queued()},
               {"version", "moerl"}});
  });

  http_->Get("/get_weight_version", [this](const httplib::Request&, httplib::Response& res) {
    Reply(res, 200, json{{"weight_version", scheduler_->Info().weight_version}});
  });

  // No prefix cache to clear: a plain-text success, as SGLang answers.
  auto flush = [](const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    res.set_content("Cache flushed.\n", "text/plain");
  };
  http_->Get("/flush_cache", flush);
  http_->Post("/flush_cache", flush);

  http_->Post("/update_weights_from_disk", [this](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<UpdateWeightsFromDiskRequest> parsed = ParseUpdateWeightsFromDiskRequest(req.body);
    if (!parsed.ok()) {
      return Reply(res, 400, UpdateWeightsFromDiskResponseToJson({false, std::string(parsed.status().message()), 0}));
    }
    absl::StatusOr<int64_t> aborted =
        scheduler_->UpdateWeightsFromDisk(parsed->model_path, parsed->weight_version, parsed->abort_all_requests);
    if (!aborted.ok()) {
      return Reply(res, 400, UpdateWeightsFromDiskResponseToJson({false, std::string(aborted.status().message()), 0}));
    }
    const std::string version = scheduler_->Info().weight_version;
    Reply(res, 200,
          UpdateWeightsFromDiskResponseToJson(
              {true, absl::StrCat("Succeeded to update model weights. Weight version updated to ", version, "."),
               *aborted}));
  });

  http_->Post("/pause_generation", [this](const httplib::Request& req, httplib::Response& res) {
    PauseMode mode = PauseMode::kAbort;
    if (!req.body.empty()) {
      const json j = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) {
        return BadRequest(res, absl::InvalidArgumentError("the /pause_generation body must be a JSON object or empty"));
      }
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.key() != "mode") {
          return BadRequest(res, absl::InvalidArgumentError(absl::StrCat("unknown field ", it.key(), " (known: mode)")));
        }
        const json& v = it.value();
        if (v == "abort") {
          mode = PauseMode::kAbort;
        } else if (v == "in_place" || v == "retract") {  // retract: the KV stays, same as in_place here
          mode = PauseMode::kInPlace;
        } else {
          return BadRequest(res, absl::InvalidArgumentError(
                                     absl::StrCat("mode must be abort, retract or in_place, found ", v.dump())));
        }
      }
    }
    scheduler_->Pause(mode);
    Reply(res, 200, json{{"message", "Generation paused successfully."}, {"status", "ok"}});
  });

  http_->Post("/continue_generation", [this](const httplib::Request&, httplib::Response& res) {
    scheduler_->Continue();
    Reply(res, 200, json{{"message", "Generation continued successfully."}, {"status", "ok"}});
  });

  http_->Post("/abort_request", [this](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<AbortRequest> parsed = ParseAbortRequest(req.body);
    if (!parsed.ok()) return BadRequest(res, parsed.status());
    if (parsed->abort_all) {
      scheduler_->AbortAll("aborted by /abort_request (abort_all)");
    } else {
      scheduler_->Abort(parsed->rid);
    }
    res.status = 200;
  });

  http_->set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    MOERL_LOG(ERROR) << req.method << " " << req.path << ": " << what;
    Reply(res, 500, ErrorBody(absl::StrCat("internal error: ", what), 500));
  });
}

}  // namespace moerl
