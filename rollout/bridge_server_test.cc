// The bridge against moerl's own inference server (rollout/server) as a
// separate process on the tiny test checkpoint: version 0 loaded and probed
// at start, version 1 published mid-run (pause, abort, load, probe, continue,
// partial rollouts resumed), every group delivered once, routes kept.
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/proto/formats.h"
#include "common/transport/in_process_ring.h"
#include "common/weights_dir.h"
#include "gtest/gtest.h"
#include "rollout/bridge.h"
#include "rollout/probe.h"
#include "rollout/sglang_http_client.h"

extern char** environ;

namespace moerl {
namespace {

namespace fs = std::filesystem;

std::string Runfile(const std::string& path) {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/moerl/", path);
}

void CopyVersion(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    const std::string name = entry.path().filename().string();
    if (name == "oracle.safetensors") continue;
    fs::copy_file(entry.path(), to / name, fs::copy_options::overwrite_existing);
  }
}

TEST(RolloutBridgeWithServer, WeightUpdateMidRunResumesPartialRolloutsOnTheRealServer) {
  const fs::path tmp = std::getenv("TEST_TMPDIR");
  const std::string weights = (tmp / "weights").string();
  CopyVersion(Runfile("trainer/model/testdata/moe"), VersionDir(weights, 0));
  ASSERT_TRUE(WriteLatestVersion(weights, 0).ok());
  const std::string addr_file = (tmp / "addr").string();

  const std::string server = Runfile("rollout/server/server");
  std::vector<std::string> args = {server, "--config", Runfile("rollout/server/testdata/tiny.yaml"),
                                   "actor.path=" + weights, "server.address_file=" + addr_file};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, server.c_str(), nullptr, nullptr, argv.data(), environ), 0);
  std::string address;
  for (int i = 0; i < 600 && address.empty(); ++i) {
    std::ifstream in(addr_file);
    std::getline(in, address);
    if (address.empty()) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_FALSE(address.empty()) << "the server wrote no address";

  absl::StatusOr<std::unique_ptr<InferenceClient>> probe_client =
      MakeSglangHttpClient(address, {});
  ASSERT_TRUE(probe_client.ok()) << probe_client.status();
  // The probe of v0 as the trainer would write it (here: what the server says).
  Probe probe;
  probe.sequences.push_back({{3, 17, 42, 99, 7, 64}, {}});
  absl::StatusOr<std::vector<double>> lp =
      (*probe_client)->ScoreTokens(probe.sequences[0].input_ids, absl::Seconds(60));
  ASSERT_TRUE(lp.ok()) << lp.status();
  probe.sequences[0].logprobs = *lp;
  std::ofstream(VersionDir(weights, 0) + "/probe.json") << ProbeToJson(probe);

  BridgeConfig config;
  config.n_samples = 2;
  config.sampling.max_new_tokens = 40;
  config.sampling.stop_token_ids = {2};
  config.max_tokens = 200;
  config.max_concurrent_rollouts = 4;
  config.consumer_batch_size = 4;
  config.max_head_offpolicyness = 100;
  config.return_routed_experts = true;
  config.weights_dir = weights;
  config.poll_interval = absl::Milliseconds(20);
  config.setup_timeout = absl::Seconds(60);
  config.request_timeout = absl::Seconds(120);
  std::vector<std::unique_ptr<InferenceClient>> clients;
  clients.push_back(*MakeSglangHttpClient(address, {}));
  RolloutBridge bridge(config, std::move(clients), nullptr);

  auto prompts = InProcessRing::CreateChannel({.mode = DeliveryMode::kAcknowledged});
  auto groups = InProcessRing::CreateChannel({.capacity_bytes = 16 << 20});
  auto feeder = InProcessRing::Attach(prompts, RingRole::kProducer);
  auto scorer = InProcessRing::Attach(groups, RingRole::kConsumer);
  constexpr int kPrompts = 12;
  for (int i = 0; i < kPrompts; ++i) {
    proto::Prompt p;
    p.set_format_version(kPromptFormatVersion);
    p.set_id(absl::StrCat("tiny/train/", i));
    for (int t = 0; t < 5; ++t) p.add_tokens(3 + (i * 7 + t * 13) % 120);
    ASSERT_TRUE(feeder->Push(p.SerializeAsString(), absl::Seconds(1)).ok());
  }
  ASSERT_TRUE(feeder->CloseProducer().ok());

  BridgeReport report;
  absl::Status status;
  std::thread run([&] {
    auto in = InProcessRing::Attach(prompts, RingRole::kConsumer);
    auto out = InProcessRing::Attach(groups, RingRole::kProducer);
    status = bridge.Run(*in, *out, &report);
  });
  std::map<std::string, int> seen;
  std::set<int64_t> versions;
  int mixed = 0;
  bool published = false;
  while (true) {
    absl::StatusOr<RingMessage> m = scorer->Pop(absl::Seconds(120));
    if (!m.ok()) break;
    proto::TrajectoryBatch batch;
    ASSERT_TRUE(batch.ParseFromString(m->payload));
    ASSERT_EQ(batch.trajectories_size(), 2);
    ++seen[batch.trajectories(0).group_id()];
    for (const proto::Trajectory& t : batch.trajectories()) {
      EXPECT_GT(t.output_tokens_size(), 0);
      EXPECT_LE(t.output_tokens_size(), 40);
      EXPECT_EQ(t.output_logprobs_size(), t.output_tokens_size());
      std::set<int64_t> own(t.output_versions().begin(), t.output_versions().end());
      versions.insert(own.begin(), own.end());
      mixed += own.size() > 1;
      if (t.routed_experts_size() > 0) {
        // 2 MoE layers (layer 1 is dense) x top-2.
        EXPECT_EQ(t.routed_experts_top_k(), 2u);
        EXPECT_EQ(t.routed_experts_layers(), 2u);
        EXPECT_EQ(t.routed_experts_size(), t.output_tokens_size() * 4);
      }
    }
    if (!published) {
      // Version 1 (the same weights: the probe still holds) while the rest run.
      CopyVersion(VersionDir(weights, 0), VersionDir(weights, 1));
      ASSERT_TRUE(WriteLatestVersion(weights, 1).ok());
      published = true;
    }
  }
  run.join();
  ::kill(pid, SIGTERM);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(seen.size(), static_cast<size_t>(kPrompts));
  for (const auto& [group, count] : seen) EXPECT_EQ(count, 1) << group;
  EXPECT_EQ(report.weight_updates, 1);
  EXPECT_TRUE(report.servers_refused.empty());
  EXPECT_TRUE(versions.count(1)) << "no token came from version 1";
  std::printf("groups %zu, requests %lld, resubmissions %lld, trajectories mixing versions %d\n",
              seen.size(), static_cast<long long>(report.requests),
              static_cast<long long>(report.resubmissions), mixed);
}

}  // namespace
}  // namespace moerl
