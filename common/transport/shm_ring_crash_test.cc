// A participant killed (SIGKILL) at each named point of the protocol, the
// 1st to 6th time it gets there: inside the journaled bookkeeping (holding
// a robust mutex), with a slot reserved, with the payload written but not
// committed, with a slot taken, with the payload copied out. Afterwards the
// survivors must see every committed message exactly as pushed, in order,
// the counters must add up, and the ring must keep working to end of stream.
// (shm_ring_fault_test kills at random points; this one aims.)
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/transport/shm_ring.h"
#include "common/transport/shm_ring_segment.h"
#include "gtest/gtest.h"

namespace moerl {

class ShmRingTestPeer {
 public:
  static void SetCrashHook(ShmRing* ring, shm_ring_internal::CrashHook hook) {
    ring->segment_->set_crash_hook(hook);
  }
};

namespace {

using shm_ring_internal::CrashPoint;

constexpr int kMessages = 12;
constexpr absl::Duration kPatience = absl::Seconds(10);

// The hook's target, set in the child process before it runs (each child
// has its own copy of these).
CrashPoint target_point;
int target_count;

void KillAtTarget(CrashPoint point) {
  if (point == target_point && --target_count == 0) ::raise(SIGKILL);
}

// Alternates sizes below and above the copy-under-lock threshold.
std::string Message(int i) {
  return absl::StrCat(i, ":", std::string(i % 2 == 0 ? 100 : 9000, static_cast<char>('a' + i)));
}

int IndexOf(const std::string& payload) { return std::stoi(payload.substr(0, payload.find(':'))); }

struct Case {
  CrashPoint point;
  int count;
  DeliveryMode mode;
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  static const char* kNames[] = {"JournalValid", "JournalHalfApplied", "SlotReserved",
                                 "PayloadWritten", "SlotTaken", "PayloadCopiedOut"};
  return absl::StrCat(kNames[static_cast<int>(info.param.point)], "_", info.param.count,
                      info.param.mode == DeliveryMode::kPlain ? "_Plain" : "_Ack");
}

class CrashPoints : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    name_ = absl::StrCat("crash", ::getpid(), ".", CaseName({GetParam(), 0}), ".ring");
    ShmRing::Remove(name_).IgnoreError();
    ASSERT_TRUE(ShmRing::Create(name_, {.capacity_bytes = 1 << 16, .mode = GetParam().mode}).ok());
    ASSERT_EQ(::pipe(report_), 0);
  }
  void TearDown() override {
    ::close(report_[0]);
    ::close(report_[1]);
    ShmRing::Remove(name_).IgnoreError();
  }

  // Runs `body` in a child that dies at the target point; returns the
  // indices the child reported (one int per successful Push or Pop).
  std::vector<int> RunChildUntilKilled(void (*body)(const std::string&, int)) {
    const pid_t child = ::fork();
    if (child == 0) {
      target_point = GetParam().point;
      target_count = GetParam().count;
      body(name_, report_[1]);
      _exit(0);  // never reached the target: the test below notices
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    killed_ = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    ::close(report_[1]);
    report_[1] = ::open("/dev/null", O_WRONLY);
    std::vector<int> reported;
    int index = 0;
    while (::read(report_[0], &index, sizeof(index)) == sizeof(index)) reported.push_back(index);
    return reported;
  }

  std::string name_;
  int report_[2];
  bool killed_ = false;
};

void ProducerBody(const std::string& name, int report) {
  auto ring = ShmRing::Open(name, RingRole::kProducer);
  if (!ring.ok()) _exit(2);
  ShmRingTestPeer::SetCrashHook(ring->get(), KillAtTarget);
  for (int i = 0; i < kMessages; ++i) {
    if (!(*ring)->Push(Message(i), kPatience).ok()) _exit(3);
    if (::write(report, &i, sizeof(i)) != sizeof(i)) _exit(4);
  }
  (*ring)->CloseProducer().IgnoreError();
}

void ConsumerBody(const std::string& name, int report) {
  auto ring = ShmRing::Open(name, RingRole::kConsumer);
  if (!ring.ok()) _exit(2);
  ShmRingTestPeer::SetCrashHook(ring->get(), KillAtTarget);
  while (true) {
    absl::StatusOr<RingMessage> m = (*ring)->Pop(kPatience);
    if (absl::IsOutOfRange(m.status())) return;
    if (!m.ok() || m->payload != Message(IndexOf(m->payload))) _exit(3);
    const int index = IndexOf(m->payload);
    if (::write(report, &index, sizeof(index)) != sizeof(index)) _exit(4);
    if (!(*ring)->Ack(m->ticket).ok()) _exit(5);
  }
}

class ProducerKilledAt : public CrashPoints {};
class ConsumerKilledAt : public CrashPoints {};

TEST_P(ProducerKilledAt, PointLeavesOnlyWholeMessagesInOrder) {
  const std::vector<int> pushed = RunChildUntilKilled(ProducerBody);
  ASSERT_TRUE(killed_) << "the producer never reached the crash point";
  auto consumer = ShmRing::Open(name_, RingRole::kConsumer);
  ASSERT_TRUE(consumer.ok());
  std::vector<int> got;
  while (true) {
    absl::StatusOr<RingMessage> m = (*consumer)->Pop(kPatience);
    if (absl::IsOutOfRange(m.status())) break;  // the dead producer counts as gone
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_EQ(m->payload, Message(IndexOf(m->payload))) << "torn message";
    got.push_back(IndexOf(m->payload));
    ASSERT_TRUE((*consumer)->Ack(m->ticket).ok());
  }
  // Every acknowledged Push arrived, in order; at most the one the producer
  // was pushing when it died arrived on top.
  ASSERT_GE(got.size(), pushed.size());
  ASSERT_LE(got.size(), pushed.size() + 1);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], static_cast<int>(i));
  const RingStats stats = (*consumer)->Stats();
  EXPECT_EQ(stats.depth_messages, 0u);
  EXPECT_EQ(stats.depth_bytes, 0u);
  EXPECT_EQ(stats.in_flight, 0u);
  EXPECT_EQ(stats.producers_died, 1u);
}

TEST_P(ConsumerKilledAt, PointBlocksNoOneAndLosesNothingUnreturned) {
  {
    auto producer = ShmRing::Open(name_, RingRole::kProducer);
    ASSERT_TRUE(producer.ok());
    for (int i = 0; i < kMessages; ++i) ASSERT_TRUE((*producer)->Push(Message(i), kPatience).ok());
    ASSERT_TRUE((*producer)->CloseProducer().ok());
  }
  const std::vector<int> first = RunChildUntilKilled(ConsumerBody);
  ASSERT_TRUE(killed_) << "the consumer never reached the crash point";
  auto consumer = ShmRing::Open(name_, RingRole::kConsumer);
  ASSERT_TRUE(consumer.ok());
  std::vector<int> count(kMessages, 0);
  for (int i : first) ++count[i];
  int redelivered_seen = 0;
  while (true) {
    absl::StatusOr<RingMessage> m = (*consumer)->Pop(kPatience);
    if (absl::IsOutOfRange(m.status())) break;
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_EQ(m->payload, Message(IndexOf(m->payload))) << "torn message";
    if (m->delivery_count > 1) ++redelivered_seen;
    ++count[IndexOf(m->payload)];
    ASSERT_TRUE((*consumer)->Ack(m->ticket).ok());
  }
  int missing = 0, duplicated = 0;
  for (int c : count) {
    missing += c == 0;
    duplicated += c > 1;
  }
  const RingStats stats = (*consumer)->Stats();
  if (GetParam().mode == DeliveryMode::kAcknowledged) {
    // Reported but not acknowledged: delivered again, and counted.
    EXPECT_EQ(missing, 0);
    EXPECT_LE(duplicated, 1);
    EXPECT_GE(static_cast<int>(stats.redelivered), duplicated);
  } else {
    // Killed inside Pop: redelivered unless the slot was already released,
    // in the last instructions of Pop.
    EXPECT_EQ(duplicated, 0);
    EXPECT_LE(missing, 1);
  }
  EXPECT_EQ(stats.redelivered, static_cast<uint64_t>(redelivered_seen));
  EXPECT_EQ(stats.depth_messages, 0u);
  EXPECT_EQ(stats.in_flight, 0u);
}

std::vector<Case> Cases(std::vector<CrashPoint> points) {
  std::vector<Case> cases;
  for (CrashPoint point : points) {
    for (int count = 1; count <= 6; ++count) {
      for (DeliveryMode mode : {DeliveryMode::kPlain, DeliveryMode::kAcknowledged}) {
        cases.push_back({point, count, mode});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Points, ProducerKilledAt,
                         ::testing::ValuesIn(Cases({CrashPoint::kJournalValid, CrashPoint::kJournalHalfApplied,
                                                    CrashPoint::kSlotReserved, CrashPoint::kPayloadWritten})),
                         CaseName);
INSTANTIATE_TEST_SUITE_P(Points, ConsumerKilledAt,
                         ::testing::ValuesIn(Cases({CrashPoint::kJournalValid, CrashPoint::kJournalHalfApplied,
                                                    CrashPoint::kSlotTaken, CrashPoint::kPayloadCopiedOut})),
                         CaseName);

}  // namespace
}  // namespace moerl
