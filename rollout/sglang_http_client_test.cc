// SglangHttpClient and RolloutBridge against scripted HTTP servers on
// 127.0.0.1 (port 0): answers parsed as SGLang writes them, and faults
// (500s, garbage, hangs past the timeout, a server dying mid-answer and
// coming back) retried, moved to another server and reported by address,
// with every prompt group delivered exactly once.
#include "rollout/sglang_http_client.h"

#include <sys/stat.h>

#include <atomic>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/proto/formats.h"
#include "common/transport/in_process_ring.h"
#include "common/weights_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "rollout/bridge.h"
#include "rollout/probe.h"
#include "rollout/sglang_api.h"
#include "rollout/testing/scripted_sglang_server.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

GenerationRequest Request(int64_t max_new_tokens) {
  GenerationRequest r;
  r.input_ids = {1, 2, 3};
  r.sampling.max_new_tokens = max_new_tokens;
  return r;
}

std::unique_ptr<InferenceClient> Client(const ScriptedServer& server) {
  HttpClientOptions options;
  options.connect_timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<InferenceClient>> c =
      MakeSglangHttpClient(server.address(), options);
  EXPECT_TRUE(c.ok()) << c.status();
  return *std::move(c);
}

TEST(SglangHttpClient, ParsesTokensLogprobsVersionAndRoutedExpertRowsOfTheOutput) {
  ScriptedServer server;
  ASSERT_TRUE(server.Start());
  auto client = Client(server);
  ASSERT_TRUE(client->UpdateWeightsFromDisk("/w/v3", 3, absl::Seconds(5)).ok());
  GenerationRequest r = Request(4);
  r.return_routed_experts = true;
  absl::StatusOr<Generation> g = client->Generate(r, absl::Seconds(5));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->output_tokens, (std::vector<int32_t>{13, 14, 15, 16}));
  EXPECT_EQ(g->output_logprobs.size(), 4u);
  EXPECT_EQ(g->finish, GenerationFinish::kLength);
  EXPECT_EQ(g->weight_version, "3");
  // Rows 2..5 of 6 (prompt 3 + 4 output - 1) chose the 4 output tokens.
  EXPECT_EQ(g->routed_experts_width, 2);
  EXPECT_EQ(g->routed_experts, (std::vector<int32_t>{2, 2, 3, 3, 0, 4, 1, 5}));
  absl::StatusOr<std::vector<double>> probe = client->ScoreTokens({5, 6, 7}, absl::Seconds(5));
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_EQ(*probe, (std::vector<double>{ProbeValue(6), ProbeValue(7)}));
  EXPECT_TRUE(client->PauseGeneration(absl::Seconds(5)).ok());
  EXPECT_TRUE(client->ContinueGeneration(absl::Seconds(5)).ok());
  EXPECT_TRUE(client->Health(absl::Seconds(5)).ok());
}

TEST(SglangHttpClient, FaultsBecomeRetryableOrFatalStatusesNamingTheServer) {
  ScriptedServer server;
  ASSERT_TRUE(server.Start());
  auto client = Client(server);
  server.Script({Fault::k500, Fault::kGarbage, Fault::kHang, Fault::kTruncated, Fault::k400});
  absl::Status s = client->Generate(Request(2), absl::Seconds(5)).status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("HTTP 500"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(server.address()));
  s = client->Generate(Request(2), absl::Seconds(5)).status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(server.address()));
  s = client->Generate(Request(2), absl::Milliseconds(300)).status();
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(server.address()));
  s = client->Generate(Request(2), absl::Seconds(5)).status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  s = client->Generate(Request(2), absl::Seconds(5)).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("out of range"));
  EXPECT_TRUE(client->Generate(Request(2), absl::Seconds(5)).ok());
  const int port = server.port();
  server.Stop();
  s = client->Generate(Request(2), absl::Seconds(5)).status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(absl::StrCat("127.0.0.1:", port)));
}

TEST(SglangHttpClient, BadAddressesAreRejected) {
  EXPECT_FALSE(MakeSglangHttpClient("localhost", {}).ok());
  EXPECT_FALSE(MakeSglangHttpClient("h:0", {}).ok());
  EXPECT_FALSE(MakeSglangHttpClient("h:x", {}).ok());
  absl::StatusOr<HostPort> hp = ParseHostPort("http://10.0.0.5:30000/");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "10.0.0.5");
  EXPECT_EQ(hp->port, 30000);
}

// The bridge over HTTP: one good server, one that misbehaves in every way
// and then dies and comes back. Every group arrives exactly once.
TEST(RolloutBridgeOverHttp, FaultyServerIsRetriedMovedAwayFromAndRejoinsWithoutLosingGroups) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string weights = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", info->name());
  ::mkdir(weights.c_str(), 0755);
  ::mkdir(VersionDir(weights, 0).c_str(), 0755);
  Probe probe;
  probe.sequences.push_back({{4, 5, 6, 7}, {ProbeValue(5), ProbeValue(6), ProbeValue(7)}});
  std::ofstream(VersionDir(weights, 0) + "/probe.json") << ProbeToJson(probe);
  ASSERT_TRUE(WriteLatestVersion(weights, 0).ok());

  ScriptedServer good, flaky;
  ASSERT_TRUE(good.Start());
  ASSERT_TRUE(flaky.Start());
  // With request_retries=3 the fourth failure in a row marks it down; every
  // generation request consumes one fault, so these fail in a row.
  flaky.Script({Fault::k500, Fault::kGarbage, Fault::kHang, Fault::kTruncated, Fault::k500,
                Fault::kGarbage, Fault::kTruncated, Fault::k500});
  BridgeConfig config;
  config.n_samples = 4;
  config.sampling.max_new_tokens = 5;
  config.max_concurrent_rollouts = 3;
  config.consumer_batch_size = 3;
  config.max_head_offpolicyness = 1000;
  config.request_timeout = absl::Milliseconds(1500);
  config.request_retries = 3;
  config.revive_interval = absl::Milliseconds(50);
  config.retry_backoff = absl::Milliseconds(10);
  config.poll_interval = absl::Milliseconds(20);
  config.setup_timeout = absl::Seconds(20);
  config.control_timeout = absl::Seconds(5);
  config.weights_dir = weights;
  std::vector<std::unique_ptr<InferenceClient>> clients;
  clients.push_back(Client(good));
  clients.push_back(Client(flaky));
  RolloutBridge bridge(config, std::move(clients), nullptr);

  auto prompts = InProcessRing::CreateChannel({.mode = DeliveryMode::kAcknowledged});
  auto groups = InProcessRing::CreateChannel({.capacity_bytes = 8 << 20});
  auto feeder = InProcessRing::Attach(prompts, RingRole::kProducer);
  auto scorer = InProcessRing::Attach(groups, RingRole::kConsumer);
  constexpr int kPrompts = 50;
  auto feed = [&](int first, int count) {
    for (int i = first; i < first + count; ++i) {
      proto::Prompt p;
      p.set_format_version(kPromptFormatVersion);
      p.set_id(absl::StrCat("http/train/", i));
      p.add_tokens(1);
      p.add_tokens(2 + i);
      ASSERT_TRUE(feeder->Push(p.SerializeAsString(), absl::Seconds(1)).ok());
    }
  };
  feed(0, 30);

  BridgeReport report;
  absl::Status status;
  std::thread run([&] {
    auto in = InProcessRing::Attach(prompts, RingRole::kConsumer);
    auto out = InProcessRing::Attach(groups, RingRole::kProducer);
    status = bridge.Run(*in, *out, &report);
  });
  std::map<std::string, int> seen;
  auto take = [&](absl::Duration timeout) {
    absl::StatusOr<RingMessage> m = scorer->Pop(timeout);
    if (!m.ok()) return false;
    proto::TrajectoryBatch batch;
    EXPECT_TRUE(batch.ParseFromString(m->payload));
    EXPECT_EQ(batch.trajectories_size(), 4);
    for (const proto::Trajectory& t : batch.trajectories()) {
      EXPECT_EQ(t.output_tokens_size(), 5);
      for (int64_t v : t.output_versions()) EXPECT_EQ(v, 0);  // the server's weight_version
    }
    ++seen[batch.trajectories(0).group_id()];
    return true;
  };
  auto wait_for_reload = [&](int64_t before) {
    for (int i = 0; i < 500 && flaky.updates() == before; ++i)
      absl::SleepFor(absl::Milliseconds(20));
    return flaky.updates() > before;
  };
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(take(absl::Seconds(30)));
  // Down after its faults, still answering /health: taken back after a reload.
  EXPECT_TRUE(wait_for_reload(1)) << "the faulty server was not taken back";
  flaky.Script({});
  // It dies with requests in flight (they hang until the server stops), and
  // new prompts arrive while it is gone: refused connections mark it down.
  flaky.Script(std::vector<Fault>(50, Fault::kHang));
  absl::SleepFor(absl::Milliseconds(100));
  const int port = flaky.port();
  flaky.Stop();
  feed(30, 10);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(take(absl::Seconds(30)));
  absl::SleepFor(absl::Milliseconds(300));
  // It comes back on the same port, on "other weights": reloaded, then used.
  const int64_t updates_before = flaky.updates();
  ASSERT_TRUE(flaky.Start(port));
  EXPECT_TRUE(wait_for_reload(updates_before)) << "the restarted server was not taken back";
  const int64_t generates_before = flaky.generates();
  feed(40, 10);
  ASSERT_TRUE(feeder->CloseProducer().ok());
  while (take(absl::Seconds(30))) {
  }
  run.join();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(seen.size(), static_cast<size_t>(kPrompts));
  for (const auto& [group, count] : seen) EXPECT_EQ(count, 1) << group;
  EXPECT_GT(report.retries, 0);
  // Down twice (its faults, its death), each time named by address. (The
  // good server may go down too on a loaded machine: timeouts.)
  int flaky_down = 0;
  for (const std::string& line : report.servers_down) {
    flaky_down += line.find(absl::StrCat("127.0.0.1:", port)) == 0;
  }
  EXPECT_GE(flaky_down, 2);
  for (const std::string& line : report.servers_down) std::printf("down: %s\n", line.c_str());
  std::printf("retries %lld, servers down: %zu, flaky generates %lld, good generates %lld\n",
              static_cast<long long>(report.retries), report.servers_down.size(),
              static_cast<long long>(flaky.generates()), static_cast<long long>(good.generates()));
  EXPECT_GT(flaky.generates(), generates_before) << "the restarted server got no work";
}

}  // namespace
}  // namespace moerl
