#include "common/stage_timing.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/transport/in_process_ring.h"
#include "common/transport/timed_ring.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

// A clock the test moves by hand.
struct FakeClock {
  absl::Time now = absl::FromUnixSeconds(1000);
  StageTiming::Clock AsClock() {
    return [this] { return now; };
  }
};

TEST(StageTiming, ScopedTimersAddToTheirBucket) {
  FakeClock clock;
  StageTiming timing("scorer", clock.AsClock());
  {
    ScopedStageTimer t(&timing, TimeBucket::kTransport);
    clock.now += absl::Milliseconds(250);
  }
  {
    ScopedStageTimer t(&timing, TimeBucket::kWaitInput);
    clock.now += absl::Seconds(2);
  }
  timing.Add(TimeBucket::kCompute, absl::Milliseconds(500));
  EXPECT_EQ(timing.Total(TimeBucket::kTransport), absl::Milliseconds(250));
  EXPECT_EQ(timing.Total(TimeBucket::kWaitInput), absl::Seconds(2));
  EXPECT_EQ(timing.Total(TimeBucket::kWaitOutput), absl::ZeroDuration());
  EXPECT_EQ(timing.Total(TimeBucket::kCompute), absl::Milliseconds(500));
}

TEST(StageTiming, NullTimingIsANoOp) {
  ScopedStageTimer t(nullptr, TimeBucket::kTransport);  // must not crash
}

TEST(StageTiming, JsonHasWallBucketsAndCounts) {
  FakeClock clock;
  StageTiming timing("bridge", clock.AsClock());
  timing.Add(TimeBucket::kWaitInput, absl::Seconds(3));
  timing.Add(TimeBucket::kWaitOutput, absl::Milliseconds(125));
  timing.Add(TimeBucket::kTransport, absl::Microseconds(1500));
  timing.Count("completion_tokens", 40);
  timing.Count("completion_tokens", 2);
  timing.Count("groups", 1);
  clock.now += absl::Seconds(10);
  EXPECT_EQ(timing.ToJson(),
            "{\"stage\":\"bridge\",\"wall_s\":10.000000,\"wait_input_s\":3.000000,"
            "\"wait_output_s\":0.125000,\"transport_s\":0.001500,\"compute_s\":0.000000,"
            "\"counts\":{\"completion_tokens\":42,\"groups\":1}}");
}

TEST(StageTimingReporter, LogsALineWhenDestroyed) {
  StageTiming timing("feeder");
  timing.Count("prompts", 7);
  testing::internal::CaptureStderr();
  { StageTimingReporter reporter(&timing, absl::Hours(1)); }
  const std::string err = testing::internal::GetCapturedStderr();
  std::vector<std::string> lines = absl::StrSplit(err, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << err;
  EXPECT_TRUE(absl::StrContains(lines[0], "stage_timing {\"stage\":\"feeder\",")) << err;
  EXPECT_TRUE(absl::StrContains(lines[0], "\"counts\":{\"prompts\":7}}")) << err;
}

TEST(StageTimingReporter, LogsPeriodically) {
  StageTiming timing("server.0");
  testing::internal::CaptureStderr();
  {
    StageTimingReporter reporter(&timing, absl::Milliseconds(20));
    absl::SleepFor(absl::Milliseconds(150));
  }
  const std::string err = testing::internal::GetCapturedStderr();
  std::vector<std::string> lines = absl::StrSplit(err, '\n', absl::SkipEmpty());
  EXPECT_GE(lines.size(), 3u) << err;
}

std::unique_ptr<InProcessRing> Attach(const std::shared_ptr<InProcessRing::Channel>& channel,
                                      RingRole role) {
  return InProcessRing::Attach(channel, role);
}

TEST(TimedRing, AnEmptyRingIsWaitingForInput) {
  auto channel = InProcessRing::CreateChannel({});
  auto producer = Attach(channel, RingRole::kProducer);
  auto consumer = Attach(channel, RingRole::kConsumer);
  StageTiming timing("t");
  TimedRing ring(consumer.get(), &timing);
  EXPECT_TRUE(absl::IsDeadlineExceeded(ring.Pop(absl::Milliseconds(60)).status()));
  EXPECT_GE(timing.Total(TimeBucket::kWaitInput), absl::Milliseconds(50));
  EXPECT_LT(timing.Total(TimeBucket::kTransport), absl::Milliseconds(20));

  // A message already there is taken by the TryPop: transport only.
  ASSERT_TRUE(producer->Push("hello", absl::Seconds(1)).ok());
  const absl::Duration waited = timing.Total(TimeBucket::kWaitInput);
  absl::StatusOr<RingMessage> m = ring.Pop(absl::Seconds(1));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->payload, "hello");
  EXPECT_EQ(timing.Total(TimeBucket::kWaitInput), waited);

  // End of stream keeps its code.
  ASSERT_TRUE(producer->CloseProducer().ok());
  EXPECT_TRUE(absl::IsOutOfRange(ring.Pop(absl::Seconds(1)).status()));
}

TEST(TimedRing, AFullRingIsWaitingOnOutput) {
  InProcessRing::Options options;
  options.capacity_bytes = 64;
  auto channel = InProcessRing::CreateChannel(options);
  auto producer = Attach(channel, RingRole::kProducer);
  auto consumer = Attach(channel, RingRole::kConsumer);
  StageTiming timing("t");
  TimedRing ring(producer.get(), &timing);
  ASSERT_TRUE(ring.Push(std::string(16, 'x'), absl::Seconds(1)).ok());
  EXPECT_EQ(timing.Total(TimeBucket::kWaitOutput), absl::ZeroDuration());
  EXPECT_TRUE(absl::IsDeadlineExceeded(ring.Push(std::string(16, 'y'), absl::Milliseconds(60))));
  EXPECT_GE(timing.Total(TimeBucket::kWaitOutput), absl::Milliseconds(50));
  // Too large for the ring at all: the inner ring's code, no waiting.
  EXPECT_TRUE(absl::IsInvalidArgument(ring.Push(std::string(1000, 'z'), absl::Seconds(5))));
  EXPECT_LT(timing.Total(TimeBucket::kWaitOutput), absl::Seconds(1));
}

}  // namespace
}  // namespace moerl
