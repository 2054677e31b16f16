// RolloutBridge against in-process fake servers: whole groups, AReaL's
// staleness rule, partial rollouts across weight updates, probes, dead
// servers, and stop/restart with an acknowledged prompt ring.
#include "rollout/bridge.h"

#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "common/proto/formats.h"
#include "common/transport/in_process_ring.h"
#include "common/weights_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rollout/fake_inference_client.h"
#include "rollout/probe.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

const std::vector<int32_t> kProbeIds = {5, 9, 13, 21, 34};

std::string TestDir() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = absl::StrCat(
      std::getenv("TEST_TMPDIR"), "/",
      absl::StrReplaceAll(absl::StrCat(info->test_suite_name(), ".", info->name()), {{"/", "_"}}));
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

// Publishes weights/v<version> (config.json, probe.json) and LATEST, as the
// trainer does.
void PublishVersion(const std::string& weights_dir, int64_t version) {
  ::mkdir(weights_dir.c_str(), 0755);
  const std::string dir = VersionDir(weights_dir, version);
  ::mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/config.json") << R"({"num_experts_per_tok": 2})";
  Probe probe;
  probe.version = version;
  probe.sequences.push_back({kProbeIds, FakeProbeLogprobs(kProbeIds, version)});
  std::ofstream(dir + "/probe.json") << ProbeToJson(probe);
  ASSERT_TRUE(WriteLatestVersion(weights_dir, version).ok());
}

proto::Prompt MakePrompt(int i) {
  proto::Prompt p;
  p.set_format_version(kPromptFormatVersion);
  p.set_id(absl::StrCat("test/train/", i));
  p.set_epoch(0);
  p.add_tokens(100 + i);
  p.add_tokens(7);
  p.set_gold_answer(absl::StrCat(i));
  return p;
}

std::string Decode(absl::Span<const int32_t> ids) {
  return absl::StrCat("text:", absl::StrJoin(ids, ","));
}

// A bridge on in-process rings and fake servers, run on its own thread.
class Harness {
 public:
  Harness(BridgeConfig config, int n_servers, uint32_t expected_producers = 0)
      : config_(std::move(config)) {
    weights_dir_ = TestDir() + "/weights";
    config_.weights_dir = weights_dir_;
    config_.poll_interval = absl::Milliseconds(10);
    config_.revive_interval = absl::Milliseconds(20);
    config_.retry_backoff = absl::Milliseconds(5);
    prompts_ = InProcessRing::CreateChannel(
        {.capacity_bytes = 1 << 20, .mode = DeliveryMode::kAcknowledged});
    trajectories_ = InProcessRing::CreateChannel(
        {.capacity_bytes = 16 << 20, .expected_producers = expected_producers});
    feeder_ = InProcessRing::Attach(prompts_, RingRole::kProducer);
    scorer_ = InProcessRing::Attach(trajectories_, RingRole::kConsumer);
    for (int i = 0; i < n_servers; ++i) {
      fakes_.push_back(std::make_shared<FakeInferenceClient>(absl::StrCat("fake:", i)));
    }
  }

  ~Harness() { Join().IgnoreError(); }

  FakeInferenceClient& server(int i) { return *fakes_[i]; }
  const std::string& weights_dir() const { return weights_dir_; }

  void Feed(int first, int count, bool close) {
    for (int i = first; i < first + count; ++i) {
      ASSERT_TRUE(feeder_->Push(MakePrompt(i).SerializeAsString(), absl::Seconds(5)).ok());
    }
    if (close) {
      ASSERT_TRUE(feeder_->CloseProducer().ok());
    }
  }

  void FeedRaw(const std::string& payload) {
    ASSERT_TRUE(feeder_->Push(payload, absl::Seconds(5)).ok());
  }

  void Start(std::function<bool()> should_stop = nullptr) {
    done_ = std::make_unique<absl::Notification>();
    std::vector<std::unique_ptr<InferenceClient>> clients;
    for (auto& fake : fakes_) clients.push_back(std::make_unique<Borrowed>(fake));
    bridge_ = std::make_unique<RolloutBridge>(config_, std::move(clients), Decode);
    thread_ = std::thread([this, should_stop] {
      auto in = InProcessRing::Attach(prompts_, RingRole::kConsumer);
      auto out = InProcessRing::Attach(trajectories_, RingRole::kProducer);
      status_ = bridge_->Run(*in, *out, &report_, should_stop);
      done_->Notify();
    });
  }

  absl::Status Join() {
    if (thread_.joinable()) thread_.join();
    bridge_.reset();
    return status_;
  }
  const BridgeReport& report() const { return report_; }

  // The next group pushed, or nullopt after `timeout` (or at end of stream).
  std::optional<proto::TrajectoryBatch> NextGroup(absl::Duration timeout) {
    absl::StatusOr<RingMessage> m = scorer_->Pop(timeout);
    if (!m.ok()) return std::nullopt;
    proto::TrajectoryBatch batch;
    EXPECT_TRUE(batch.ParseFromString(m->payload));
    return batch;
  }

  RingStats PromptStats() const { return feeder_->Stats(); }

 private:
  // The bridge owns its clients; the test keeps the fakes to script them.
  class Borrowed : public InferenceClient {
   public:
    explicit Borrowed(std::shared_ptr<FakeInferenceClient> f) : f_(std::move(f)) {}
    const std::string& address() const override { return f_->address(); }
    absl::StatusOr<Generation> Generate(const GenerationRequest& r, absl::Duration t) override {
      return f_->Generate(r, t);
    }
    absl::StatusOr<std::vector<double>> ScoreTokens(const std::vector<int32_t>& ids,
                                                    absl::Duration t) override {
      return f_->ScoreTokens(ids, t);
    }
    absl::Status UpdateWeightsFromDisk(const std::string& p, int64_t v, absl::Duration t) override {
      return f_->UpdateWeightsFromDisk(p, v, t);
    }
    absl::Status PauseGeneration(absl::Duration t) override { return f_->PauseGeneration(t); }
    absl::Status ContinueGeneration(absl::Duration t) override { return f_->ContinueGeneration(t); }
    absl::Status Health(absl::Duration t) override { return f_->Health(t); }
    absl::Status AbortAll(absl::Duration t) override { return f_->AbortAll(t); }
    void Cancel() override {}  // the fake outlives this bridge (restart tests)

   private:
    std::shared_ptr<FakeInferenceClient> f_;
  };

  BridgeConfig config_;
  std::string weights_dir_;
  std::shared_ptr<InProcessRing::Channel> prompts_, trajectories_;
  std::unique_ptr<MessageRing> feeder_, scorer_;
  std::vector<std::shared_ptr<FakeInferenceClient>> fakes_;
  std::unique_ptr<RolloutBridge> bridge_;
  std::thread thread_;
  std::unique_ptr<absl::Notification> done_;
  absl::Status status_;
  BridgeReport report_;
};

BridgeConfig SmallConfig() {
  BridgeConfig config;
  config.n_samples = 3;
  config.sampling.max_new_tokens = 6;
  config.max_tokens = 64;
  config.max_concurrent_rollouts = 4;
  config.consumer_batch_size = 2;
  config.max_head_offpolicyness = 1000;
  config.request_retries = 2;
  config.setup_timeout = absl::Seconds(20);
  config.control_timeout = absl::Seconds(20);
  config.request_timeout = absl::Seconds(20);
  return config;
}

// Every group id seen, with how often; fails on a malformed group.
void CheckGroup(const proto::TrajectoryBatch& batch, uint32_t n, std::map<std::string, int>* seen) {
  ASSERT_EQ(batch.trajectories_size(), static_cast<int>(n));
  EXPECT_EQ(batch.group_size(), n);
  const std::string group = batch.trajectories(0).group_id();
  ++(*seen)[group];
  for (uint32_t i = 0; i < n; ++i) {
    const proto::Trajectory& t = batch.trajectories(i);
    EXPECT_EQ(t.format_version(), kTrajectoryFormatVersion);
    EXPECT_EQ(t.group_id(), group);
    EXPECT_EQ(group, t.prompt_id() + "@0");
    EXPECT_EQ(t.sample_index(), i);
    EXPECT_EQ(t.output_logprobs_size(), t.output_tokens_size());
    EXPECT_EQ(t.output_versions_size(), t.output_tokens_size());
    EXPECT_EQ(t.output_text(),
              Decode(std::vector<int32_t>(t.output_tokens().begin(), t.output_tokens().end())));
    EXPECT_EQ(t.prompt_tokens_size(), 2);
  }
}

TEST(RolloutBridge, PushesEachPromptOnceAsOneWholeGroupAndAcksIt) {
  Harness h(SmallConfig(), 2);
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 10, /*close=*/true);
  h.Start();
  std::map<std::string, int> seen;
  while (auto batch = h.NextGroup(absl::Seconds(20))) {
    CheckGroup(*batch, 3, &seen);
    for (const proto::Trajectory& t : batch->trajectories()) {
      EXPECT_EQ(t.output_tokens_size(), 6);
      EXPECT_EQ(t.finish_reason(), proto::FINISH_REASON_LENGTH);
      for (int64_t v : t.output_versions()) EXPECT_EQ(v, 0);
    }
  }
  ASSERT_TRUE(h.Join().ok()) << h.Join();
  EXPECT_EQ(seen.size(), 10u);
  for (const auto& [group, count] : seen) EXPECT_EQ(count, 1) << group;
  EXPECT_EQ(h.PromptStats().acked, 10u);
  EXPECT_EQ(h.report().groups_pushed, 10);
  // Both servers were used and each loaded v0 at start.
  EXPECT_GT(h.server(0).counters().generate_calls, 0);
  EXPECT_GT(h.server(1).counters().generate_calls, 0);
  EXPECT_EQ(h.server(0).counters().loaded_paths,
            std::vector<std::string>{VersionDir(h.weights_dir(), 0)});
}

TEST(RolloutBridge, StopTokenEndsASampleAndRoutesAreKeptPerToken) {
  BridgeConfig config = SmallConfig();
  config.return_routed_experts = true;
  Harness h(config, 1);
  h.server(0).set_stop_after(4);
  h.server(0).set_routed_width(4);
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 2, true);
  h.Start();
  std::map<std::string, int> seen;
  while (auto batch = h.NextGroup(absl::Seconds(20))) {
    CheckGroup(*batch, 3, &seen);
    for (const proto::Trajectory& t : batch->trajectories()) {
      EXPECT_EQ(t.output_tokens_size(), 4);
      EXPECT_EQ(t.output_tokens(3), FakeInferenceClient::kStopToken);
      EXPECT_EQ(t.finish_reason(), proto::FINISH_REASON_STOP);
      EXPECT_EQ(t.routed_experts_size(), 4 * 4);
      EXPECT_EQ(t.routed_experts_top_k(), 2u);  // config.json's num_experts_per_tok
      EXPECT_EQ(t.routed_experts_layers(), 2u);
    }
  }
  ASSERT_TRUE(h.Join().ok());
  EXPECT_EQ(seen.size(), 2u);
}

// AReaL's test_staleness_control: with eta = 0 only one batch's worth of
// groups completes at version 0; the next version admits the rest.
TEST(RolloutBridge, ZeroOffpolicynessAdmitsOneBatchPerVersion) {
  BridgeConfig config = SmallConfig();
  config.max_head_offpolicyness = 0;
  config.consumer_batch_size = 2;
  config.max_concurrent_rollouts = 4;
  Harness h(config, 1);
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 4, true);
  h.Start();
  std::map<std::string, int> seen;
  for (int i = 0; i < 2; ++i) {
    auto batch = h.NextGroup(absl::Seconds(20));
    ASSERT_TRUE(batch.has_value());
    CheckGroup(*batch, 3, &seen);
  }
  EXPECT_FALSE(h.NextGroup(absl::Milliseconds(500)).has_value())
      << "a third group completed at version 0 with max_head_offpolicyness=0";
  PublishVersion(h.weights_dir(), 1);
  for (int i = 0; i < 2; ++i) {
    auto batch = h.NextGroup(absl::Seconds(20));
    ASSERT_TRUE(batch.has_value());
    CheckGroup(*batch, 3, &seen);
    for (const proto::Trajectory& t : batch->trajectories()) {
      for (int64_t v : t.output_versions()) EXPECT_EQ(v, 1);
    }
  }
  ASSERT_TRUE(h.Join().ok());
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_EQ(h.report().weight_updates, 1);
}

TEST(RolloutBridge, OneVersionOfOffpolicynessAdmitsTwoBatches) {
  BridgeConfig config = SmallConfig();
  config.max_head_offpolicyness = 1;
  config.consumer_batch_size = 2;
  Harness h(config, 1);
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 6, true);
  h.Start();
  std::map<std::string, int> seen;
  for (int i = 0; i < 4; ++i) {
    auto batch = h.NextGroup(absl::Seconds(20));
    ASSERT_TRUE(batch.has_value()) << "only " << i << " groups at version 0 with eta=1";
    CheckGroup(*batch, 3, &seen);
  }
  EXPECT_FALSE(h.NextGroup(absl::Milliseconds(500)).has_value());
  PublishVersion(h.weights_dir(), 1);
  while (auto batch = h.NextGroup(absl::Seconds(20))) CheckGroup(*batch, 3, &seen);
  ASSERT_TRUE(h.Join().ok());
  EXPECT_EQ(seen.size(), 6u);
}

// A trainer that takes consumer_batch_size groups per version and then
// publishes the next: the staleness it sees never exceeds the bound.
class StalenessBound : public ::testing::TestWithParam<int> {};

TEST_P(StalenessBound, TrainerNeverSeesStalerGroupsThanTheBound) {
  const int eta = GetParam();
  BridgeConfig config = SmallConfig();
  config.max_head_offpolicyness = eta;
  config.consumer_batch_size = 2;
  config.max_concurrent_rollouts = 8;
  config.sampling.max_new_tokens = 8;
  Harness h(config, 2);
  h.server(0).set_token_delay(absl::Milliseconds(1));
  h.server(1).set_token_delay(absl::Milliseconds(1));
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 24, true);
  h.Start();
  int64_t trainer_version = 0;
  int in_batch = 0;
  int64_t worst = 0;
  std::map<std::string, int> seen;
  while (auto batch = h.NextGroup(absl::Seconds(20))) {
    CheckGroup(*batch, 3, &seen);
    for (const proto::Trajectory& t : batch->trajectories()) {
      for (int64_t v : t.output_versions()) worst = std::max(worst, trainer_version - v);
    }
    if (++in_batch == 2) {
      in_batch = 0;
      PublishVersion(h.weights_dir(), ++trainer_version);
    }
  }
  ASSERT_TRUE(h.Join().ok());
  EXPECT_EQ(seen.size(), 24u);
  EXPECT_LE(worst, eta);
  EXPECT_LE(h.report().max_push_staleness, eta);
  std::printf("eta=%d: worst staleness seen by the trainer %lld over %lld versions\n", eta,
              static_cast<long long>(worst), static_cast<long long>(trainer_version));
}

INSTANTIATE_TEST_SUITE_P(Eta, StalenessBound, ::testing::Values(0, 1, 2));

TEST(RolloutBridge, InterruptedSamplesResumeAcrossAWeightUpdateWithMixedVersions) {
  BridgeConfig config = SmallConfig();
  config.sampling.max_new_tokens = 40;
  config.max_concurrent_rollouts = 2;
  Harness h(config, 2);
  h.server(0).set_token_delay(absl::Milliseconds(5));
  h.server(1).set_token_delay(absl::Milliseconds(5));
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 2, true);
  h.Start();
  // Wait until generation is under way, then publish v1 mid-sample.
  while (h.server(0).counters().generate_calls + h.server(1).counters().generate_calls < 6) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  absl::SleepFor(absl::Milliseconds(50));
  PublishVersion(h.weights_dir(), 1);
  std::map<std::string, int> seen;
  int mixed = 0;
  while (auto batch = h.NextGroup(absl::Seconds(20))) {
    CheckGroup(*batch, 3, &seen);
    for (const proto::Trajectory& t : batch->trajectories()) {
      EXPECT_EQ(t.output_tokens_size(), 40) << "resubmission lost or repeated tokens";
      std::set<int64_t> versions(t.output_versions().begin(), t.output_versions().end());
      if (versions == std::set<int64_t>{0, 1}) {
        ++mixed;
        // Versions only go up along a sequence.
        EXPECT_TRUE(std::is_sorted(t.output_versions().begin(), t.output_versions().end()));
      }
      // The resumed sequence is the one an uninterrupted request would give.
      std::vector<int32_t> input(t.prompt_tokens().begin(), t.prompt_tokens().end());
      FakeInferenceClient reference("reference");
      GenerationRequest r;
      r.input_ids = input;
      r.sampling.max_new_tokens = 40;
      auto g = reference.Generate(r, absl::Seconds(5));
      ASSERT_TRUE(g.ok());
      EXPECT_EQ(std::vector<int32_t>(t.output_tokens().begin(), t.output_tokens().end()),
                g->output_tokens);
    }
  }
  ASSERT_TRUE(h.Join().ok());
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(mixed, 0) << "no trajectory spans the update";
  EXPECT_GT(h.report().resubmissions, 0);
  EXPECT_EQ(h.report().weight_updates, 1);
  EXPECT_EQ(h.server(0).version(), 1);
  EXPECT_EQ(h.server(1).version(), 1);
}

TEST(RolloutBridge, ServerFailingTheProbeIsRefusedByAddress) {
  Harness h(SmallConfig(), 2);
  h.server(1).set_probe_offset(0.5);
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 6, true);
  h.Start();
  std::map<std::string, int> seen;
  while (auto batch = h.NextGroup(absl::Seconds(20))) CheckGroup(*batch, 3, &seen);
  ASSERT_TRUE(h.Join().ok());
  EXPECT_EQ(seen.size(), 6u);
  ASSERT_EQ(h.report().servers_refused.size(), 1u);
  EXPECT_THAT(h.report().servers_refused[0], HasSubstr("fake:1"));
  EXPECT_THAT(h.report().servers_refused[0], HasSubstr("probe_tolerance"));
  EXPECT_EQ(h.server(1).counters().generate_calls, 0);
}

TEST(RolloutBridge, EveryServerFailingTheProbeIsAnErrorNamingThem) {
  Harness h(SmallConfig(), 2);
  h.server(0).set_probe_offset(-1);
  h.server(1).set_probe_offset(1);
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 1, true);
  h.Start();
  const absl::Status status = h.Join();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("fake:0"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("fake:1"));
}

TEST(RolloutBridge, DeadServerSamplesContinueElsewhereAndItRejoinsWhenBack) {
  BridgeConfig config = SmallConfig();
  config.sampling.max_new_tokens = 20;
  Harness h(config, 2);
  h.server(0).set_token_delay(absl::Milliseconds(2));
  h.server(1).set_token_delay(absl::Milliseconds(2));
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 12, false);
  h.Start();
  std::map<std::string, int> seen;
  auto first = h.NextGroup(absl::Seconds(20));
  ASSERT_TRUE(first.has_value());
  CheckGroup(*first, 3, &seen);
  h.server(0).set_dead(true);
  for (int i = 0; i < 4; ++i) {
    auto batch = h.NextGroup(absl::Seconds(20));
    ASSERT_TRUE(batch.has_value());
    CheckGroup(*batch, 3, &seen);
  }
  const int64_t updates_before = h.server(0).counters().updates;
  const int64_t calls_before = h.server(0).counters().generate_calls;
  h.server(0).set_dead(false);
  // Back: reloaded with the current weights before it is used again.
  for (int i = 0; i < 500 && h.server(0).counters().updates == updates_before; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GT(h.server(0).counters().updates, updates_before);
  h.Feed(12, 6, true);
  while (auto batch = h.NextGroup(absl::Seconds(20))) {
    CheckGroup(*batch, 3, &seen);
    for (const proto::Trajectory& t : batch->trajectories()) EXPECT_EQ(t.output_tokens_size(), 20);
  }
  ASSERT_TRUE(h.Join().ok());
  EXPECT_EQ(seen.size(), 18u);
  for (const auto& [group, count] : seen) EXPECT_EQ(count, 1) << group;
  EXPECT_GT(h.server(0).counters().generate_calls, calls_before) << "not used after coming back";
  ASSERT_FALSE(h.report().servers_down.empty());
  EXPECT_THAT(h.report().servers_down[0], HasSubstr("fake:0"));
}

TEST(RolloutBridge, AllServersDownLongerThanSetupTimeoutIsAnError) {
  BridgeConfig config = SmallConfig();
  config.setup_timeout = absl::Milliseconds(500);
  Harness h(config, 1);
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 2, true);
  h.server(0).FailNextGenerates(1000000);
  h.Start();
  const absl::Status status = h.Join();
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("fake:0"));
}

// A stopped bridge leaves its unfinished groups unacknowledged; the next
// bridge on the same rings produces them: no group lost, none twice.
TEST(RolloutBridge, StopAndRestartOnAnAcknowledgedRingLosesAndRepeatsNoGroup) {
  BridgeConfig config = SmallConfig();
  config.sampling.max_new_tokens = 30;
  Harness first(config, 2, /*expected_producers=*/2);
  first.server(0).set_token_delay(absl::Milliseconds(1));
  first.server(1).set_token_delay(absl::Milliseconds(1));
  PublishVersion(first.weights_dir(), 0);
  first.Feed(0, 16, true);
  std::atomic<bool> stop{false};
  first.Start([&stop] { return stop.load(); });
  std::map<std::string, int> seen;
  for (int i = 0; i < 3; ++i) {
    auto batch = first.NextGroup(absl::Seconds(20));
    ASSERT_TRUE(batch.has_value());
    CheckGroup(*batch, 3, &seen);
  }
  stop = true;
  ASSERT_TRUE(first.Join().ok());
  const int64_t pushed_by_first = first.report().groups_pushed;
  EXPECT_LT(pushed_by_first, 16) << "stop came too late to test a restart";
  // The second bridge: same rings, same servers.
  first.Start();
  while (auto batch = first.NextGroup(absl::Seconds(20))) CheckGroup(*batch, 3, &seen);
  ASSERT_TRUE(first.Join().ok());
  EXPECT_EQ(seen.size(), 16u);
  for (const auto& [group, count] : seen) EXPECT_EQ(count, 1) << group;
  EXPECT_GT(first.report().prompts_redelivered, 0);
}

TEST(RolloutBridge, PromptsThatCannotBeServedAreDroppedAndAcknowledged) {
  BridgeConfig config = SmallConfig();
  config.max_tokens = 8;  // max_new_tokens 6: room for prompts of up to 7 tokens
  Harness h(config, 1);
  PublishVersion(h.weights_dir(), 0);
  h.Feed(0, 1, false);
  proto::Prompt too_long = MakePrompt(1);
  for (int i = 0; i < 10; ++i) too_long.add_tokens(1);
  h.FeedRaw(too_long.SerializeAsString());
  h.FeedRaw("\xff\xff not a prompt");
  h.Feed(2, 0, true);
  h.Start();
  std::map<std::string, int> seen;
  while (auto batch = h.NextGroup(absl::Seconds(20))) {
    CheckGroup(*batch, 3, &seen);
    // The per-prompt budget: min(max_tokens - 2 prompt tokens, 6).
    EXPECT_EQ(batch->trajectories(0).output_tokens_size(), 6);
  }
  ASSERT_TRUE(h.Join().ok());
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_EQ(h.report().prompts_dropped, 2);
  EXPECT_EQ(h.PromptStats().acked, 3u);
}

}  // namespace
}  // namespace moerl
