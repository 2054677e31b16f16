// VllmHttpClient against a scripted OpenAI-style completions server on
// 127.0.0.1: token ids from "token:<id>", log-probs, finish reasons, the echo
// probe, AReaL's control endpoints, and faults.
#include "rollout/vllm_http_client.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace moerl {
namespace {

using ::testing::HasSubstr;

class CompletionsServer {
 public:
  CompletionsServer() {
    server_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      last_body = nlohmann::json::parse(req.body);
      if (reply_override.size() > 0) {
        res.status = status_override;
        res.set_content(reply_override, "application/json");
        return;
      }
      const auto prompt = last_body["prompt"].get<std::vector<int>>();
      nlohmann::json tokens = nlohmann::json::array(), logprobs = nlohmann::json::array();
      if (last_body.value("echo", false)) {
        for (size_t i = 0; i < prompt.size(); ++i) {
          tokens.push_back(absl::StrCat("token:", prompt[i]));
          logprobs.push_back(i == 0 ? nlohmann::json(nullptr) : nlohmann::json(-0.1 * prompt[i]));
        }
      }
      const int n = last_body["max_tokens"].get<int>();
      for (int i = 0; i < n; ++i) {
        tokens.push_back(absl::StrCat("token:", 20 + i));
        logprobs.push_back(-0.5);
      }
      nlohmann::json reply = {{"choices",
                               {{{"text", "x"},
                                 {"finish_reason", finish},
                                 {"logprobs", {{"tokens", tokens}, {"token_logprobs", logprobs}}}}}}};
      res.set_content(reply.dump(), "application/json");
    });
    for (const char* path :
         {"/areal_update_weights", "/areal_pause_generation", "/areal_continue_generation"}) {
      server_.Post(path, [this, path](const httplib::Request& req, httplib::Response& res) {
        calls.push_back(absl::StrCat(path, " ", req.body));
        res.set_content("{}", "application/json");
      });
    }
    server_.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) absl::SleepFor(absl::Milliseconds(1));
  }
  ~CompletionsServer() {
    server_.stop();
    thread_.join();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  std::string finish = "length";
  std::string reply_override;
  int status_override = 200;
  nlohmann::json last_body;
  std::vector<std::string> calls;

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

TEST(VllmHttpClient, SendsTokenIdsAndParsesTokenIdsLogprobsAndFinish) {
  CompletionsServer server;
  auto client = MakeVllmHttpClient(server.address(), {});
  ASSERT_TRUE(client.ok());
  GenerationRequest r;
  r.input_ids = {5, 6, 7};
  r.sampling.max_new_tokens = 3;
  r.sampling.stop_token_ids = {2};
  absl::StatusOr<Generation> g = (*client)->Generate(r, absl::Seconds(5));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->output_tokens, (std::vector<int32_t>{20, 21, 22}));
  EXPECT_EQ(g->output_logprobs, (std::vector<float>{-0.5f, -0.5f, -0.5f}));
  EXPECT_EQ(g->finish, GenerationFinish::kLength);
  EXPECT_EQ(server.last_body["prompt"], nlohmann::json({5, 6, 7}));
  EXPECT_EQ(server.last_body["return_tokens_as_token_ids"], true);
  EXPECT_EQ(server.last_body["logprobs"], 0);
  EXPECT_EQ(server.last_body["stop_token_ids"], nlohmann::json({2}));
  server.finish = "abort";
  g = (*client)->Generate(r, absl::Seconds(5));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->finish, GenerationFinish::kAbort);
}

TEST(VllmHttpClient, ProbeUsesEchoedPromptLogprobs) {
  CompletionsServer server;
  auto client = MakeVllmHttpClient(server.address(), {});
  ASSERT_TRUE(client.ok());
  absl::StatusOr<std::vector<double>> lp = (*client)->ScoreTokens({3, 4, 10}, absl::Seconds(5));
  ASSERT_TRUE(lp.ok()) << lp.status();
  ASSERT_EQ(lp->size(), 2u);
  EXPECT_DOUBLE_EQ((*lp)[0], -0.4);
  EXPECT_DOUBLE_EQ((*lp)[1], -1.0);
  EXPECT_EQ(server.last_body["echo"], true);
}

TEST(VllmHttpClient, ControlCallsUseAReaLEndpoints) {
  CompletionsServer server;
  auto client = MakeVllmHttpClient(server.address(), {});
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->PauseGeneration(absl::Seconds(5)).ok());
  ASSERT_TRUE((*client)->UpdateWeightsFromDisk("/w/v3", 3, absl::Seconds(5)).ok());
  ASSERT_TRUE((*client)->ContinueGeneration(absl::Seconds(5)).ok());
  ASSERT_TRUE((*client)->Health(absl::Seconds(5)).ok());
  ASSERT_EQ(server.calls.size(), 3u);
  EXPECT_THAT(server.calls[0], HasSubstr("/areal_pause_generation"));
  EXPECT_THAT(server.calls[1], HasSubstr(R"("model_path":"/w/v3")"));
  EXPECT_THAT(server.calls[2], HasSubstr("/areal_continue_generation"));
}

TEST(VllmHttpClient, GarbageIsRetryableAndA400IsNot) {
  CompletionsServer server;
  auto client = MakeVllmHttpClient(server.address(), {});
  ASSERT_TRUE(client.ok());
  GenerationRequest r;
  r.input_ids = {1};
  r.sampling.max_new_tokens = 1;
  server.reply_override = R"({"choices":[{"logprobs":{"tokens":["17"],"token_logprobs":[-1]},"finish_reason":"stop"}]})";
  absl::Status s = (*client)->Generate(r, absl::Seconds(5)).status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(server.address()));
  server.reply_override = R"({"object":"error","message":"max_tokens too large"})";
  server.status_override = 400;
  s = (*client)->Generate(r, absl::Seconds(5)).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
}

}  // namespace
}  // namespace moerl
