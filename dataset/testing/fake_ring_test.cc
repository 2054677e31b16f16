#include "dataset/testing/fake_ring.h"

#include "gtest/gtest.h"

namespace moerl {
namespace {

TEST(FakeRing, EndOfStreamAfterEveryProducerClosedAndAllAcked) {
  auto state = std::make_shared<FakeRingState>(DeliveryMode::kAcknowledged, 8);
  FakeRing producer(state, true), consumer(state, false);
  ASSERT_TRUE(producer.Push("a", absl::Seconds(1)).ok());
  ASSERT_TRUE(producer.CloseProducer().ok());
  EXPECT_EQ(producer.Push("b", absl::Seconds(1)).code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<RingMessage> m = consumer.Pop(absl::Seconds(1));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->payload, "a");
  EXPECT_EQ(consumer.TryPop().status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(consumer.Ack(m->ticket).ok());
  EXPECT_EQ(consumer.Pop(absl::Seconds(1)).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(FakeRing, AbandonedMessagesAreDeliveredAgain) {
  auto state = std::make_shared<FakeRingState>(DeliveryMode::kAcknowledged, 8);
  FakeRing producer(state, true), dying(state, false), survivor(state, false);
  ASSERT_TRUE(producer.Push("a", absl::Seconds(1)).ok());
  ASSERT_TRUE(dying.Pop(absl::Seconds(1)).ok());
  dying.Abandon();
  absl::StatusOr<RingMessage> m = survivor.Pop(absl::Seconds(1));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->payload, "a");
  EXPECT_EQ(m->delivery_count, 2u);
  EXPECT_EQ(survivor.Stats().redelivered, 1u);
}

TEST(FakeRing, FullRingTimesOut) {
  auto state = std::make_shared<FakeRingState>(DeliveryMode::kPlain, 1);
  FakeRing producer(state, true);
  ASSERT_TRUE(producer.Push("a", absl::Seconds(1)).ok());
  EXPECT_EQ(producer.TryPush("b").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(producer.Push("b", absl::Milliseconds(10)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace moerl
