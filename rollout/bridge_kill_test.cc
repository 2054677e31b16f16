// A bridge process killed (SIGKILL) mid-run on shared-memory rings with an
// acknowledged prompt ring, then a second bridge on the same rings: every
// prompt group arrives; the only repeats allowed are groups the first bridge
// pushed but had not yet acknowledged when it died (at most the groups it had
// in flight).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto/formats.h"
#include "common/transport/shm_ring.h"
#include "common/weights_dir.h"
#include "gtest/gtest.h"
#include "rollout/bridge.h"
#include "rollout/fake_inference_client.h"
#include "rollout/probe.h"

namespace moerl {
namespace {

constexpr int kPrompts = 40;
constexpr int kConcurrent = 3;

BridgeConfig Config(const std::string& weights) {
  BridgeConfig config;
  config.n_samples = 2;
  config.sampling.max_new_tokens = 20;
  config.max_concurrent_rollouts = kConcurrent;
  config.consumer_batch_size = 4;
  config.max_head_offpolicyness = 1000;
  config.weights_dir = weights;
  config.poll_interval = absl::Milliseconds(10);
  config.setup_timeout = absl::Seconds(20);
  return config;
}

absl::Status RunOneBridge(const std::string& prompts_ring, const std::string& groups_ring,
                          const std::string& weights, BridgeReport* report) {
  auto in = ShmRing::Open(prompts_ring, RingRole::kConsumer);
  if (!in.ok()) return in.status();
  auto out = ShmRing::Open(groups_ring, RingRole::kProducer);
  if (!out.ok()) return out.status();
  std::vector<std::unique_ptr<InferenceClient>> servers;
  auto fake = std::make_unique<FakeInferenceClient>("fake:0");
  fake->set_token_delay(absl::Milliseconds(1));
  servers.push_back(std::move(fake));
  RolloutBridge bridge(Config(weights), std::move(servers), nullptr);
  return bridge.Run(**in, **out, report);
}

TEST(RolloutBridgeProcess, KilledBridgeLosesNoGroupAndRepeatsOnlyUnacknowledgedOnes) {
  const std::string tag = absl::StrCat("bridgekill", ::getpid());
  const std::string prompts_ring = *ShmRing::SegmentName(tag, "t", "prompts");
  const std::string groups_ring = *ShmRing::SegmentName(tag, "t", "groups");
  const std::string weights = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", tag);
  ::mkdir(weights.c_str(), 0755);
  ::mkdir(VersionDir(weights, 0).c_str(), 0755);
  ASSERT_TRUE(WriteLatestVersion(weights, 0).ok());
  ShmRing::CreateOptions prompt_options;
  prompt_options.capacity_bytes = 1 << 20;
  prompt_options.mode = DeliveryMode::kAcknowledged;
  ASSERT_TRUE(ShmRing::Create(prompts_ring, prompt_options).ok());
  ShmRing::CreateOptions group_options;
  group_options.capacity_bytes = 8 << 20;
  group_options.expected_producers = 2;  // the killed bridge and its successor
  ASSERT_TRUE(ShmRing::Create(groups_ring, group_options).ok());

  {
    auto feeder = ShmRing::Open(prompts_ring, RingRole::kProducer);
    ASSERT_TRUE(feeder.ok());
    for (int i = 0; i < kPrompts; ++i) {
      proto::Prompt p;
      p.set_format_version(kPromptFormatVersion);
      p.set_id(absl::StrCat("kill/train/", i));
      p.add_tokens(1);
      p.add_tokens(i);
      ASSERT_TRUE((*feeder)->Push(p.SerializeAsString(), absl::Seconds(5)).ok());
    }
    ASSERT_TRUE((*feeder)->CloseProducer().ok());
  }
  auto scorer = ShmRing::Open(groups_ring, RingRole::kConsumer);
  ASSERT_TRUE(scorer.ok());

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    BridgeReport report;
    const absl::Status status = RunOneBridge(prompts_ring, groups_ring, weights, &report);
    ::_exit(status.ok() ? 0 : 1);
  }
  std::map<std::string, int> seen;
  auto take = [&](absl::Duration timeout) {
    absl::StatusOr<RingMessage> m = (*scorer)->Pop(timeout);
    if (!m.ok()) return false;
    proto::TrajectoryBatch batch;
    EXPECT_TRUE(batch.ParseFromString(m->payload));
    EXPECT_EQ(batch.trajectories_size(), 2);
    ++seen[batch.trajectories(0).group_id()];
    return true;
  };
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(take(absl::Seconds(30)));
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(::waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus));

  BridgeReport report;
  const absl::Status second = RunOneBridge(prompts_ring, groups_ring, weights, &report);
  EXPECT_TRUE(second.ok()) << second;
  while (take(absl::Seconds(5))) {
  }
  int repeated = 0;
  for (const auto& [group, count] : seen) repeated += count - 1;
  EXPECT_EQ(seen.size(), static_cast<size_t>(kPrompts)) << "groups lost";
  EXPECT_LE(repeated, kConcurrent);
  EXPECT_GT(report.prompts_redelivered, 0);
  std::printf("groups %zu, repeated %d, redelivered to the second bridge %lld\n", seen.size(),
              repeated, static_cast<long long>(report.prompts_redelivered));
  EXPECT_TRUE(ShmRing::Remove(prompts_ring).ok());
  EXPECT_TRUE(ShmRing::Remove(groups_ring).ok());
}

}  // namespace
}  // namespace moerl
