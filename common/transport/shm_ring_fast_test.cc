// ShmRing's fast paths: the zero-copy consumer (PopView / ReleaseView), the
// zero-copy producer (ReservePush / CommitPush / AbortPush) and batches
// (PushBatch / PopBatch), in one process and across processes. Crash safety
// of these paths under SIGKILL: shm_ring_fast_fault_test.
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/transport/shm_ring.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

constexpr absl::Duration kLong = absl::Seconds(10);

std::string RingName() {
  std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  if (test.size() > 60) test.resize(60);
  return absl::StrCat("fasttest", ::getpid(), ".", test, ".hop");
}

// Message i: a header with i, then a body whose size and bytes depend on i;
// sizes on both sides of the 4 KiB copy-under-lock threshold when `large`.
std::string Message(uint32_t i, bool large) {
  const uint32_t body = large && i % 7 == 3 ? 5000 + i % 3000 : (i * 37) % 200;
  std::string m(4 + body, '\0');
  std::memcpy(&m[0], &i, 4);
  for (uint32_t k = 0; k < body; ++k) m[4 + k] = static_cast<char>(i * 13 + k);
  return m;
}

class ShmRingFastTest : public ::testing::TestWithParam<DeliveryMode> {
 protected:
  void SetUp() override {
    name_ = RingName();
    for (char& c : name_) {
      if (c == '/') c = '_';
    }
    ShmRing::Remove(name_).IgnoreError();
  }
  void TearDown() override { ShmRing::Remove(name_).IgnoreError(); }
  bool acknowledged() const { return GetParam() == DeliveryMode::kAcknowledged; }
  std::unique_ptr<ShmRing> OpenAs(RingRole role) {
    auto ring = ShmRing::Open(name_, role);
    EXPECT_TRUE(ring.ok()) << ring.status();
    return ring.ok() ? std::move(*ring) : nullptr;
  }
  std::string name_;
};

TEST_P(ShmRingFastTest, PopViewSeesThePayloadInPlaceUntilReleased) {
  ASSERT_TRUE(ShmRing::Create(name_, {.capacity_bytes = 1 << 20, .mode = GetParam()}).ok());
  auto producer = OpenAs(RingRole::kProducer);
  auto consumer = OpenAs(RingRole::kConsumer);
  const std::string big(300000, 'q');
  ASSERT_TRUE(producer->Push(big, kLong).ok());
  ASSERT_TRUE(producer->Push("small", kLong).ok());
  ASSERT_TRUE(producer->CloseProducer().ok());
  ShmRing::MessageView a, b;
  ASSERT_TRUE(consumer->PopView(&a, kLong).ok());
  ASSERT_TRUE(consumer->PopView(&b, kLong).ok());
  EXPECT_EQ(a.payload, big);
  EXPECT_EQ(b.payload, "small");
  EXPECT_EQ(a.delivery_count, 1u);
  EXPECT_EQ(consumer->Stats().in_flight, 2u);
  // Held views keep the stream open.
  EXPECT_EQ(consumer->TryPop().status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(consumer->ReleaseView(b).ok());
  ASSERT_TRUE(consumer->ReleaseView(a).ok());
  EXPECT_EQ(consumer->ReleaseView(a).code(), absl::StatusCode::kNotFound) << "released twice";
  const RingStats stats = consumer->Stats();
  EXPECT_EQ(stats.in_flight, 0u);
  EXPECT_EQ(stats.popped, 2u);
  EXPECT_EQ(stats.acked, acknowledged() ? 2u : 0u);
  EXPECT_EQ(consumer->Pop(kLong).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_P(ShmRingFastTest, AViewHeldByAConsumerThatGoesAwayIsDeliveredAgain) {
  ASSERT_TRUE(ShmRing::Create(name_, {.capacity_bytes = 1 << 20, .mode = GetParam()}).ok());
  auto producer = OpenAs(RingRole::kProducer);
  auto second = OpenAs(RingRole::kConsumer);
  ASSERT_TRUE(producer->Push("held", kLong).ok());
  {
    auto first = OpenAs(RingRole::kConsumer);
    ShmRing::MessageView view;
    ASSERT_TRUE(first->PopView(&view, kLong).ok());
    EXPECT_EQ(view.payload, "held");
  }  // deregistered without releasing: like a consumer that died
  absl::StatusOr<RingMessage> again = second->Pop(kLong);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->payload, "held");
  EXPECT_EQ(again->delivery_count, 2u);
  EXPECT_EQ(second->Stats().redelivered, 1u);
}

TEST_P(ShmRingFastTest, ReservePushCommitsInPlaceAndAbortPushLeavesNothing) {
  ASSERT_TRUE(ShmRing::Create(name_, {.capacity_bytes = 64 << 10, .mode = GetParam()}).ok());
  auto producer = OpenAs(RingRole::kProducer);
  auto consumer = OpenAs(RingRole::kConsumer);
  absl::StatusOr<char*> area = producer->ReservePush(10, kLong);
  ASSERT_TRUE(area.ok()) << area.status();
  EXPECT_EQ(producer->Push("x", kLong).code(), absl::StatusCode::kFailedPrecondition)
      << "a Push while a reservation is open";
  std::memcpy(*area, "0123456789", 10);
  EXPECT_EQ(consumer->TryPop().status().code(), absl::StatusCode::kUnavailable) << "visible before commit";
  ASSERT_TRUE(producer->CommitPush().ok());
  EXPECT_EQ(producer->CommitPush().code(), absl::StatusCode::kFailedPrecondition);
  area = producer->ReservePush(5, kLong);
  ASSERT_TRUE(area.ok());
  std::memcpy(*area, "gone!", 5);
  ASSERT_TRUE(producer->AbortPush().ok());
  ASSERT_TRUE(producer->Push("after", kLong).ok());
  ASSERT_TRUE(producer->CloseProducer().ok());
  absl::StatusOr<RingMessage> m = consumer->Pop(kLong);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->payload, "0123456789");
  ASSERT_TRUE(consumer->Ack(m->ticket).ok());
  m = consumer->Pop(kLong);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->payload, "after");
  ASSERT_TRUE(consumer->Ack(m->ticket).ok());
  EXPECT_EQ(consumer->Pop(kLong).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(consumer->Stats().pushed, 2u);
}

// A small ring, so that batches wrap around its end (pads) and fill it.
TEST_P(ShmRingFastTest, BatchesKeepOrderAcrossWrapsAndFullRings) {
  ASSERT_TRUE(ShmRing::Create(name_, {.capacity_bytes = 16 << 10, .mode = GetParam()}).ok());
  auto producer = OpenAs(RingRole::kProducer);
  auto consumer = OpenAs(RingRole::kConsumer);
  constexpr uint32_t kCount = 20000;
  std::vector<std::string> all;
  for (uint32_t i = 0; i < kCount; ++i) all.push_back(Message(i, /*large=*/i % 100 < 10));
  std::vector<absl::string_view> views(all.begin(), all.end());
  size_t sent = 0;
  uint32_t next = 0;
  std::vector<RingMessage> got;
  while (next < kCount) {
    if (sent < kCount) {
      size_t pushed = 0;
      const size_t want = std::min<size_t>(1 + sent % 97, kCount - sent);
      const absl::Status s = producer->PushBatch(absl::MakeConstSpan(views).subspan(sent, want),
                                                 absl::ZeroDuration(), &pushed);
      ASSERT_TRUE(s.ok() || absl::IsResourceExhausted(s)) << s;
      if (s.ok()) {
        ASSERT_EQ(pushed, want);
      }
      sent += pushed;
      if (sent == kCount) {
        ASSERT_TRUE(producer->CloseProducer().ok());
      }
    }
    absl::StatusOr<size_t> n = consumer->PopBatch(&got, 1 + next % 50, absl::ZeroDuration());
    if (absl::IsUnavailable(n.status())) continue;
    ASSERT_TRUE(n.ok()) << n.status();
    ASSERT_GE(*n, 1u);
    for (size_t k = 0; k < *n; ++k, ++next) {
      ASSERT_EQ(got[k].payload, all[next]) << "message " << next;
      EXPECT_EQ(got[k].delivery_count, 1u);
      EXPECT_EQ(got[k].ticket != 0, acknowledged());
      if (acknowledged()) {
        ASSERT_TRUE(consumer->Ack(got[k].ticket).ok());
      }
    }
  }
  EXPECT_EQ(consumer->PopBatch(&got, 8, kLong).status().code(), absl::StatusCode::kOutOfRange);
  const RingStats stats = consumer->Stats();
  EXPECT_EQ(stats.pushed, kCount);
  EXPECT_EQ(stats.popped, kCount);
  EXPECT_EQ(stats.depth_messages, 0u);
  EXPECT_EQ(stats.depth_bytes, 0u);
}

TEST_P(ShmRingFastTest, BatchesAndViewsAcrossProcessesDeliverEachMessageOnceInOrder) {
  ASSERT_TRUE(ShmRing::Create(name_, {.capacity_bytes = 64 << 10, .mode = GetParam(), .expected_producers = 1}).ok());
  constexpr uint32_t kCount = 30000;
  const pid_t child = ::fork();
  if (child == 0) {
    auto ring = ShmRing::Open(name_, RingRole::kProducer);
    if (!ring.ok()) _exit(2);
    std::vector<std::string> batch;
    for (uint32_t i = 0; i < kCount;) {
      batch.clear();
      for (uint32_t k = 0; k < 1 + i % 40 && i + k < kCount; ++k) batch.push_back(Message(i + k, true));
      const std::vector<absl::string_view> views(batch.begin(), batch.end());
      if (!(*ring)->PushBatch(views, kLong).ok()) _exit(3);
      i += static_cast<uint32_t>(batch.size());
    }
    if (!(*ring)->CloseProducer().ok()) _exit(4);
    _exit(0);
  }
  auto consumer = OpenAs(RingRole::kConsumer);
  std::vector<RingMessage> got;
  uint32_t next = 0;
  for (int round = 0;; ++round) {
    if (round % 3 == 2) {
      ShmRing::MessageView view;
      const absl::Status s = consumer->PopView(&view, kLong);
      if (absl::IsOutOfRange(s)) break;
      ASSERT_TRUE(s.ok()) << s;
      ASSERT_EQ(view.payload, Message(next, true)) << "message " << next;
      ++next;
      ASSERT_TRUE(consumer->ReleaseView(view).ok());
      continue;
    }
    absl::StatusOr<size_t> n = consumer->PopBatch(&got, 64, kLong);
    if (absl::IsOutOfRange(n.status())) break;
    ASSERT_TRUE(n.ok()) << n.status();
    for (size_t k = 0; k < *n; ++k, ++next) {
      ASSERT_EQ(got[k].payload, Message(next, true)) << "message " << next;
      if (acknowledged()) {
        ASSERT_TRUE(consumer->Ack(got[k].ticket).ok());
      }
    }
  }
  EXPECT_EQ(next, kCount);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

INSTANTIATE_TEST_SUITE_P(Modes, ShmRingFastTest,
                         ::testing::Values(DeliveryMode::kPlain, DeliveryMode::kAcknowledged),
                         [](const ::testing::TestParamInfo<DeliveryMode>& info) {
                           return info.param == DeliveryMode::kPlain ? std::string("Plain")
                                                                     : std::string("Acknowledged");
                         });

}  // namespace
}  // namespace moerl
