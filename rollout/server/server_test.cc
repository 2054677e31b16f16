// The server over real HTTP on 127.0.0.1 (port 0), against outside oracles:
// the in-process GenerationEngine (greedy and seeded sampling, bit for bit),
// the trainer's ScoreSequences (deterministic mode and the weight probe of
// docs/run_folder.md, bit for bit), and the training forward's routing
// (routed_experts).
#include <httplib.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include <ATen/ops/randn_like.h>
#include <ATen/ops/tensor.h>
#include <c10/core/InferenceMode.h>

#include "nlohmann/json.hpp"
#include "rollout/engine/engine.h"
#include "rollout/server/http_server.h"
#include "rollout/server/scheduler.h"
#include "rollout/sglang_api.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/model.h"

namespace moerl {
namespace {

using json = nlohmann::json;
constexpr char kMoe[] = "trainer/model/testdata/moe";

class TestServer {
 public:
  explicit TestServer(SchedulerOptions options) {
    absl::StatusOr<std::unique_ptr<Scheduler>> s = Scheduler::Create(options);
    EXPECT_TRUE(s.ok()) << s.status();
    scheduler_ = *std::move(s);
    http_ = std::make_unique<SglangHttpServer>(scheduler_.get(), 32, 7);
    absl::StatusOr<int> port = http_->Bind("127.0.0.1", 0);
    EXPECT_TRUE(port.ok()) << port.status();
    port_ = *port;
    thread_ = std::thread([this] { (void)http_->Serve(); });
  }
  ~TestServer() {
    http_->Stop();
    thread_.join();
  }
  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    return c;
  }
  httplib::Result Post(const std::string& path, const std::string& body) const {
    return Client().Post(path.c_str(), body, "application/json");
  }
  httplib::Result Get(const std::string& path) const { return Client().Get(path.c_str()); }
  Scheduler* scheduler() { return scheduler_.get(); }

 private:
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<SglangHttpServer> http_;
  std::thread thread_;
  int port_ = 0;
};

SchedulerOptions Options(int64_t slots = 4, bool deterministic = false, int64_t step_delay_us = 0) {
  SchedulerOptions o;
  o.decode_step_delay_us = step_delay_us;
  o.model_path = kMoe;
  o.max_running_requests = slots;
  o.deterministic = deterministic;
  return o;
}

GenerateResponse Generate(const TestServer& server, const GenerateRequest& req) {
  httplib::Result res = server.Post("/generate", GenerateRequestToJson(req).dump());
  EXPECT_TRUE(res) << "no reply";
  if (!res) return {};
  EXPECT_EQ(res->status, 200) << res->body;
  absl::StatusOr<std::vector<GenerateResponse>> parsed = ParseGenerateResponses(res->body);
  EXPECT_TRUE(parsed.ok()) << parsed.status() << " " << res->body;
  if (!parsed.ok() || parsed->empty()) return {};
  return (*parsed)[0];
}

GenerateRequest Request(std::vector<int64_t> prompt, int64_t max_new, double temperature = 0) {
  GenerateRequest r;
  r.input_ids = {std::move(prompt)};
  r.sampling_params[0].max_new_tokens = max_new;
  r.sampling_params[0].temperature = temperature;
  r.sampling_params[0].ignore_eos = true;  // fixed lengths, like the engine without stop ids
  r.return_logprob = true;
  return r;
}

std::vector<int64_t> Ids(const GenerateResponse& r) {
  std::vector<int64_t> ids;
  if (r.meta_info.output_token_logprobs) {
    for (const TokenLogprob& t : *r.meta_info.output_token_logprobs) ids.push_back(t.token_id);
  }
  return ids;
}

std::vector<float> Logprobs(const GenerateResponse& r) {
  std::vector<float> lps;
  if (r.meta_info.output_token_logprobs) {
    for (const TokenLogprob& t : *r.meta_info.output_token_logprobs) lps.push_back(static_cast<float>(*t.logprob));
  }
  return lps;
}

Generation EngineAlone(const std::string& dir, const std::vector<int64_t>& prompt, int64_t max_new, double temperature,
                       uint64_t seed) {
  auto model = LoadHfModel(dir);
  EXPECT_TRUE(model.ok()) << model.status();
  GenerationEngine engine(*model);
  SamplingConfig cfg;
  cfg.max_new_tokens = max_new;
  cfg.temperature = temperature;
  cfg.seed = seed;
  auto outs = engine.Generate({prompt}, cfg);
  EXPECT_TRUE(outs.ok()) << outs.status();
  return (*outs)[0];
}

const std::vector<std::vector<int64_t>> kPrompts = {
    {1, 5, 9, 33, 7}, {3, 4}, {100, 20, 31, 7, 7, 8, 64, 2, 90, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22}, {42}};

TEST(Server, GreedyAndSeededSamplingEqualTheEngineBitForBit) {
  TestServer server(Options());
  for (const auto& prompt : kPrompts) {
    const Generation want = EngineAlone(kMoe, prompt, 12, 0.0, 0);
    const GenerateResponse got = Generate(server, Request(prompt, 12));
    EXPECT_EQ(Ids(got), want.tokens);
    EXPECT_EQ(*got.output_ids, want.tokens);
    EXPECT_EQ(Logprobs(got), want.logprobs);  // bit for bit
    EXPECT_EQ(got.meta_info.finish_reason->type, "length");
    EXPECT_EQ(got.meta_info.prompt_tokens, static_cast<int64_t>(prompt.size()));
    EXPECT_EQ(got.meta_info.completion_tokens, 12);
  }
  GenerateRequest sampled = Request(kPrompts[0], 16, 0.8);
  sampled.sampling_params[0].top_k = 20;
  sampled.sampling_params[0].top_p = 0.9;
  sampled.sampling_params[0].sampling_seed = 1234;
  auto model = LoadHfModel(kMoe);
  ASSERT_TRUE(model.ok());
  GenerationEngine engine(*model);
  SamplingConfig cfg;
  cfg.max_new_tokens = 16;
  cfg.temperature = 0.8;
  cfg.top_k = 20;
  cfg.top_p = 0.9;
  cfg.seed = 1234;
  auto want = engine.Generate({kPrompts[0]}, cfg);
  ASSERT_TRUE(want.ok());
  const GenerateResponse got = Generate(server, sampled);
  EXPECT_EQ(Ids(got), (*want)[0].tokens);
  EXPECT_EQ(Logprobs(got), (*want)[0].logprobs);
}

TEST(Server, StopTokenEndsWithMatched) {
  TestServer server(Options());
  const Generation free_run = EngineAlone(kMoe, kPrompts[0], 12, 0.0, 0);
  GenerateRequest r = Request(kPrompts[0], 12);
  r.sampling_params[0].stop_token_ids = {free_run.tokens[3]};
  const GenerateResponse got = Generate(server, r);
  const std::vector<int64_t> ids = Ids(got);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), free_run.tokens[3]);
  EXPECT_LE(ids.size(), 4u);
  EXPECT_EQ(got.meta_info.finish_reason->type, "stop");
  EXPECT_EQ(*got.meta_info.finish_reason->matched, free_run.tokens[3]);
  r.sampling_params[0].min_new_tokens = 6;  // the stop id is ignored before 6 tokens
  EXPECT_GE(Ids(Generate(server, r)).size(), 6u);
}

TEST(Server, DeterministicModeAndProbeEqualScoreSequencesBitForBit) {
  TestServer server(Options(4, /*deterministic=*/true));
  auto model = LoadHfModel(kMoe);
  ASSERT_TRUE(model.ok());
  for (const auto& prompt : kPrompts) {
    const GenerateResponse got = Generate(server, Request(prompt, 10));
    std::vector<int64_t> full = prompt;
    const std::vector<int64_t> ids = Ids(got);
    full.insert(full.end(), ids.begin(), ids.end());
    auto scored = ScoreSequences(**model, {full}, {static_cast<int64_t>(prompt.size())}, 1.0);
    ASSERT_TRUE(scored.ok());
    EXPECT_EQ(Logprobs(got), (*scored)[0]);
  }
  // The weight probe of docs/run_folder.md.
  const std::vector<int64_t> probe = kPrompts[2];
  json body = {{"input_ids", probe},
               {"sampling_params", {{"max_new_tokens", 0}}},
               {"return_logprob", true},
               {"logprob_start_len", 0}};
  httplib::Result res = server.Post("/generate", body.dump());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json reply = json::parse(res->body);
  const json& in = reply["meta_info"]["input_token_logprobs"];
  ASSERT_EQ(in.size(), probe.size());
  EXPECT_TRUE(in[0][0].is_null());
  EXPECT_EQ(reply["meta_info"]["completion_tokens"], 0);
  EXPECT_EQ(reply["output_ids"], json::array());
  auto want = ScoreSequences(**model, {probe}, {1}, 1.0);
  ASSERT_TRUE(want.ok());
  for (size_t i = 1; i < probe.size(); ++i) {
    EXPECT_EQ(in[i][1], probe[i]);
    EXPECT_EQ(in[i][0].get<float>(), (*want)[0][i - 1]) << "position " << i;
  }
}

TEST(Server, ProbeOutsideDeterministicModeIsCloseToTheTrainer) {
  TestServer server(Options());
  auto model = LoadHfModel(kMoe);
  ASSERT_TRUE(model.ok());
  GenerateRequest r = Request(kPrompts[2], 0);
  r.logprob_start_len = 3;
  const GenerateResponse got = Generate(server, r);
  auto want = ScoreSequences(**model, {kPrompts[2]}, {4}, 1.0);
  ASSERT_TRUE(want.ok());
  const auto& in = *got.meta_info.input_token_logprobs;
  ASSERT_EQ(in.size(), kPrompts[2].size() - 3);
  EXPECT_FALSE(in[0].logprob.has_value());
  EXPECT_EQ(in[0].token_id, kPrompts[2][3]);
  double worst = 0;
  for (size_t i = 1; i < in.size(); ++i) worst = std::max(worst, std::abs(*in[i].logprob - (*want)[0][i - 1]));
  EXPECT_LT(worst, 1e-4) << "max |server - trainer| " << worst;
}

TEST(Server, ConcurrentClientsGetTheirAloneOutputs) {
  TestServer server(Options(/*slots=*/3));  // 6 clients, 3 slots: some queue
  std::vector<std::vector<int64_t>> prompts = kPrompts;
  prompts.push_back({9, 8, 7, 6});
  prompts.push_back({55, 66});
  std::vector<int64_t> lengths = {20, 5, 13, 30, 2, 9};
  std::vector<GenerateResponse> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateRequest r = Request(prompts[i], lengths[i], i % 2 ? 0.9 : 0.0);
    r.sampling_params[0].sampling_seed = static_cast<int64_t>(i);
    alone.push_back(Generate(server, r));
  }
  std::vector<std::future<GenerateResponse>> together;
  for (size_t i = 0; i < prompts.size(); ++i) {
    together.push_back(std::async(std::launch::async, [&, i] {
      GenerateRequest r = Request(prompts[i], lengths[i], i % 2 ? 0.9 : 0.0);
      r.sampling_params[0].sampling_seed = static_cast<int64_t>(i);
      return Generate(server, r);
    }));
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    const GenerateResponse got = together[i].get();
    EXPECT_EQ(Ids(got), Ids(alone[i])) << "client " << i;
    EXPECT_EQ(Logprobs(got), Logprobs(alone[i])) << "client " << i;
    EXPECT_EQ(got.meta_info.completion_tokens, lengths[i]);
  }
  // A batch request answers with an array, one entry per row.
  GenerateRequest batch;
  batch.batched = true;
  batch.input_ids = {prompts[0], prompts[2]};  // greedy alone too
  batch.sampling_params[0].max_new_tokens = 4;
  batch.sampling_params[0].temperature = 0;
  batch.sampling_params[0].ignore_eos = true;
  batch.return_logprob = true;
  httplib::Result res = server.Post("/generate", GenerateRequestToJson(batch).dump());
  ASSERT_TRUE(res);
  const json reply = json::parse(res->body);
  ASSERT_TRUE(reply.is_array());
  ASSERT_EQ(reply.size(), 2u);
  const std::vector<int64_t> second = Ids(alone[2]);
  EXPECT_EQ(reply[1]["output_ids"], json(std::vector<int64_t>(second.begin(), second.begin() + 4)));
}

TEST(Server, BadRequestsAre400NamingTheField) {
  TestServer server(Options());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{oops", "not valid JSON"},
      {R"({"input_ids": [1], "extra": 2})", "unknown field extra"},
      {R"({"input_ids": [1, 500]})", "input_ids[1] is 500, outside the vocabulary"},
      {R"({"input_ids": [[1], [2, -1]]})", "input_ids[1][1] is -1"},
      {absl::StrCat(R"({"input_ids": )", json(std::vector<int64_t>(300, 1)).dump(), "}"), "more than the context length"},
      {R"({"input_ids": [1], "sampling_params": {"max_new_tokens": 1000}})", "sampling_params.max_new_tokens"},
      {R"({"input_ids": [1], "sampling_params": {"top_p": 0}})", "sampling_params.top_p"},
  };
  for (const auto& [body, needle] : cases) {
    httplib::Result res = server.Post("/generate", body);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << body;
    const json err = json::parse(res->body, nullptr, false);
    ASSERT_FALSE(err.is_discarded()) << res->body;
    EXPECT_EQ(err["code"], 400);
    EXPECT_NE(err["message"].get<std::string>().find(needle), std::string::npos) << err["message"];
  }
  httplib::Result bad = server.Post("/update_weights_from_disk", R"({"model_path": "/nonexistent"})");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(json::parse(bad->body)["success"], false);
  EXPECT_EQ(server.Get("/health")->status, 200);
  EXPECT_EQ(server.Get("/health_generate")->status, 200);
}

TEST(Server, InfoEndpoints) {
  TestServer server(Options());
  const json info = json::parse(server.Get("/get_model_info")->body);
  EXPECT_EQ(info["model_path"], kMoe);
  EXPECT_EQ(info["is_generation"], true);
  EXPECT_EQ(info["weight_version"], "default");
  EXPECT_EQ(server.Get("/get_weight_version")->status, 200);
  httplib::Result flush = server.Post("/flush_cache", "");
  EXPECT_EQ(flush->status, 200);
  EXPECT_EQ(flush->body.rfind("Cache flushed.", 0), 0u);
  const json si = json::parse(server.Get("/get_server_info")->body);
  EXPECT_EQ(si["context_length"], 256);
  EXPECT_EQ(si["max_running_requests"], 4);
}

// Waits until the scheduler runs `n` sequences.
void WaitRunning(Scheduler* s, int64_t n) {
  for (int i = 0; i < 2000 && s->running() < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_GE(s->running(), n);
}

TEST(Server, RoutedExpertsEqualTheTrainingForwardRouting) {
  TestServer server(Options());
  GenerateRequest r = Request(kPrompts[0], 6);
  r.return_routed_experts = true;
  const GenerateResponse got = Generate(server, r);
  auto model = LoadHfModel(kMoe);
  ASSERT_TRUE(model.ok());
  const ModelConfig& c = (*model)->config();
  const int64_t cols = c.NumMoeLayers() * c.num_experts_per_tok;
  ASSERT_TRUE(got.meta_info.routed_experts.has_value());
  auto routes = DecodeRoutedExperts(*got.meta_info.routed_experts, cols);
  ASSERT_TRUE(routes.ok()) << routes.status();
  std::vector<int64_t> fed = kPrompts[0];
  const std::vector<int64_t> ids = Ids(got);
  fed.insert(fed.end(), ids.begin(), ids.end() - 1);
  ASSERT_EQ(routes->rows, static_cast<int64_t>(fed.size()));  // prompt + completion - 1, as SGLang
  c10::InferenceMode guard;
  ModelOutput out = (*model)->Forward(ModelInput::Pack({fed}));
  ASSERT_EQ(static_cast<int64_t>(out.topk_ids_tk.size()), c.NumMoeLayers());
  for (int64_t t = 0; t < routes->rows; ++t) {
    for (int64_t l = 0; l < c.NumMoeLayers(); ++l) {
      for (int64_t j = 0; j < c.num_experts_per_tok; ++j) {
        EXPECT_EQ(routes->ids[t * cols + l * c.num_experts_per_tok + j], out.topk_ids_tk[l][t][j].item<int64_t>())
            << "row " << t << " layer " << l << " k " << j;
      }
    }
  }
}

TEST(Server, UpdateWeightsMidGenerationMovesVersionAndLaterTokensUseTheNewWeights) {
  const std::string tmp = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
  const std::string v3 = tmp + "/weights/v3";
  {
    auto model = LoadHfModel(kMoe);
    ASSERT_TRUE(model.ok());
    c10::InferenceMode guard;
    at::Tensor head = (*model)->lm_head_weight();
    head.add_(at::randn_like(head) * 0.5);  // a different greedy path
    std::filesystem::create_directories(tmp + "/weights");
    const absl::Status saved = SaveHfCheckpoint(**model, v3, at::kFloat, 1ull << 30);
    ASSERT_TRUE(saved.ok()) << saved;
  }
  TestServer server(Options(4, false, /*step_delay_us=*/2000));
  const std::vector<int64_t> prompt = kPrompts[1];
  auto long_run = std::async(std::launch::async, [&] { return Generate(server, Request(prompt, 250)); });
  WaitRunning(server.scheduler(), 1);
  httplib::Result upd = server.Post(
      "/update_weights_from_disk", UpdateWeightsFromDiskRequestToJson({v3, true, std::nullopt, std::nullopt, true}).dump());
  ASSERT_TRUE(upd);
  ASSERT_EQ(upd->status, 200) << upd->body;
  auto parsed = ParseUpdateWeightsFromDiskResponse(upd->body);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->success);
  EXPECT_EQ(parsed->num_paused_requests, 1);
  const GenerateResponse partial = long_run.get();
  EXPECT_EQ(partial.meta_info.finish_reason->type, "abort");
  const std::vector<int64_t> old_ids = Ids(partial);
  EXPECT_LT(old_ids.size(), 250u);
  // The old weights produced the partial output.
  const Generation old_engine = EngineAlone(kMoe, prompt, static_cast<int64_t>(std::max<size_t>(old_ids.size(), 1)), 0, 0);
  if (!old_ids.empty()) {
    EXPECT_EQ(old_ids, old_engine.tokens);
  }
  EXPECT_EQ(json::parse(server.Get("/get_model_info")->body)["weight_version"], "3");  // from the folder name v3
  // The bridge resubmits prompt + partial output: the new weights continue it.
  std::vector<int64_t> resumed = prompt;
  resumed.insert(resumed.end(), old_ids.begin(), old_ids.end());
  const GenerateResponse after = Generate(server, Request(resumed, 8));
  EXPECT_EQ(after.meta_info.weight_version, "3");
  const Generation new_engine = EngineAlone(v3, resumed, 8, 0, 0);
  EXPECT_EQ(Ids(after), new_engine.tokens);
  EXPECT_EQ(Logprobs(after), new_engine.logprobs);
  EXPECT_NE(new_engine.tokens, EngineAlone(kMoe, resumed, 8, 0, 0).tokens);  // the weights did change
  // An explicit version wins, and an update without abort waits for running requests.
  UpdateWeightsFromDiskRequest req{kMoe, false, std::string("17"), std::nullopt, true};
  auto slow = std::async(std::launch::async, [&] { return Generate(server, Request(prompt, 60)); });
  WaitRunning(server.scheduler(), 1);
  upd = server.Post("/update_weights_from_disk", UpdateWeightsFromDiskRequestToJson(req).dump());
  ASSERT_EQ(upd->status, 200) << upd->body;
  const GenerateResponse finished = slow.get();
  EXPECT_EQ(finished.meta_info.finish_reason->type, "length");
  EXPECT_EQ(finished.meta_info.weight_version, "3");
  EXPECT_EQ(json::parse(server.Get("/get_weight_version")->body)["weight_version"], "17");
}

TEST(Server, PauseAbortsWithPartialOutputAndContinueResumesQueuedRequests) {
  TestServer server(Options(4, false, /*step_delay_us=*/2000));
  const std::vector<int64_t> prompt = kPrompts[0];
  auto running = std::async(std::launch::async, [&] { return Generate(server, Request(prompt, 250)); });
  WaitRunning(server.scheduler(), 1);
  ASSERT_EQ(server.Post("/pause_generation", "")->status, 200);
  const GenerateResponse aborted = running.get();
  EXPECT_EQ(aborted.meta_info.finish_reason->type, "abort");
  const std::vector<int64_t> full = EngineAlone(kMoe, prompt, 250, 0, 0).tokens;
  const std::vector<int64_t> partial = Ids(aborted);
  ASSERT_LT(partial.size(), full.size());
  EXPECT_EQ(partial, std::vector<int64_t>(full.begin(), full.begin() + partial.size()));
  // While paused, a new request waits; continue lets it run.
  auto waiting = std::async(std::launch::async, [&] { return Generate(server, Request(prompt, 3)); });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  ASSERT_EQ(server.Post("/continue_generation", "{}")->status, 200);
  EXPECT_EQ(waiting.get().meta_info.completion_tokens, 3);
  // /abort_request by rid.
  GenerateRequest r = Request(prompt, 250);
  r.rid = {"victim"};
  auto victim = std::async(std::launch::async, [&] { return Generate(server, r); });
  WaitRunning(server.scheduler(), 1);
  httplib::Result ab = server.Post("/abort_request", R"({"rid": "victim"})");
  ASSERT_EQ(ab->status, 200);
  const GenerateResponse v = victim.get();
  EXPECT_EQ(v.meta_info.id, "victim");
  EXPECT_EQ(v.meta_info.finish_reason->type, "abort");
  EXPECT_LT(v.meta_info.completion_tokens, 250);
}

}  // namespace
}  // namespace moerl
