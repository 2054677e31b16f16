// The MessageRing contract (message_ring.h), checked against InProcessRing
// and ShmRing with the same tests.
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/transport/in_process_ring.h"
#include "common/transport/shm_ring.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

struct RingConfig {
  uint64_t capacity_bytes = 1 << 16;
  DeliveryMode mode = DeliveryMode::kPlain;
  uint32_t expected_producers = 0;
};

// Makes participants of one ring.
class RingFactory {
 public:
  virtual ~RingFactory() = default;
  virtual std::unique_ptr<MessageRing> Attach(RingRole role) = 0;
};

class InProcessFactory : public RingFactory {
 public:
  explicit InProcessFactory(const RingConfig& c)
      : channel_(InProcessRing::CreateChannel(
            {.capacity_bytes = c.capacity_bytes, .mode = c.mode, .expected_producers = c.expected_producers})) {}
  std::unique_ptr<MessageRing> Attach(RingRole role) override {
    return InProcessRing::Attach(channel_, role);
  }

 private:
  std::shared_ptr<InProcessRing::Channel> channel_;
};

// A ring name derived from the test, so parallel tests never collide.
std::string TestRingName() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string test = absl::StrCat(info->test_suite_name(), "-", info->name());
  for (char& c : test) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  if (test.size() > 64) test = test.substr(test.size() - 64);
  return absl::StrCat("test", ::getpid(), ".", test, ".ring");
}

class ShmFactory : public RingFactory {
 public:
  explicit ShmFactory(const RingConfig& c) : name_(TestRingName()) {
    ShmRing::Remove(name_).IgnoreError();
    const absl::Status created = ShmRing::Create(
        name_, {.capacity_bytes = c.capacity_bytes, .mode = c.mode, .expected_producers = c.expected_producers});
    EXPECT_TRUE(created.ok()) << created;
  }
  ~ShmFactory() override { ShmRing::Remove(name_).IgnoreError(); }
  std::unique_ptr<MessageRing> Attach(RingRole role) override {
    auto ring = ShmRing::Open(name_, role);
    EXPECT_TRUE(ring.ok()) << ring.status();
    return ring.ok() ? std::move(*ring) : nullptr;
  }

 private:
  std::string name_;
};

using FactoryMaker = std::function<std::unique_ptr<RingFactory>(const RingConfig&)>;

class RingContract : public ::testing::TestWithParam<FactoryMaker> {
 protected:
  std::unique_ptr<RingFactory> Make(RingConfig config = {}) { return GetParam()(config); }
};

constexpr absl::Duration kShort = absl::Milliseconds(50);
constexpr absl::Duration kLong = absl::Seconds(10);

TEST_P(RingContract, PopsWhatWasPushedInOrder) {
  auto f = Make();
  auto producer = f->Attach(RingRole::kProducer);
  auto consumer = f->Attach(RingRole::kConsumer);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(producer->Push(std::string(i, 'a' + i % 26), kLong).ok());
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<RingMessage> m = consumer->Pop(kLong);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->payload, std::string(i, 'a' + i % 26));
    EXPECT_EQ(m->delivery_count, 1u);
  }
  const RingStats stats = producer->Stats();
  EXPECT_EQ(stats.pushed, 100u);
  EXPECT_EQ(stats.popped, 100u);
  EXPECT_EQ(stats.depth_messages, 0u);
}

TEST_P(RingContract, TryPopOnEmptyIsUnavailable) {
  auto f = Make();
  auto producer = f->Attach(RingRole::kProducer);
  auto consumer = f->Attach(RingRole::kConsumer);
  EXPECT_EQ(consumer->TryPop().status().code(), absl::StatusCode::kUnavailable);
}

TEST_P(RingContract, PopTimesOutWithDeadlineExceeded) {
  auto f = Make();
  auto producer = f->Attach(RingRole::kProducer);
  auto consumer = f->Attach(RingRole::kConsumer);
  const absl::Time start = absl::Now();
  EXPECT_EQ(consumer->Pop(kShort).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, kShort - absl::Milliseconds(5));
}

TEST_P(RingContract, FullRingRefusesTryPushAndTimesOutPush) {
  auto f = Make({.capacity_bytes = 4096});
  auto producer = f->Attach(RingRole::kProducer);
  auto consumer = f->Attach(RingRole::kConsumer);
  int pushed = 0;
  absl::Status s;
  while ((s = producer->TryPush(std::string(100, 'x'))).ok()) ++pushed;
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_GT(pushed, 10);
  EXPECT_EQ(producer->Push(std::string(100, 'x'), kShort).code(), absl::StatusCode::kDeadlineExceeded);
  // Taking one message makes room again.
  ASSERT_TRUE(consumer->Pop(kLong).ok());
  EXPECT_TRUE(producer->TryPush(std::string(100, 'x')).ok());
}

TEST_P(RingContract, MessageLargerThanTheRingIsInvalidArgument) {
  auto f = Make({.capacity_bytes = 4096});
  auto producer = f->Attach(RingRole::kProducer);
  EXPECT_EQ(producer->Push(std::string(4096, 'x'), kShort).code(), absl::StatusCode::kInvalidArgument);
  const uint64_t largest = producer->Stats().largest_message_bytes;
  EXPECT_TRUE(producer->TryPush(std::string(largest, 'x')).ok());
}

TEST_P(RingContract, PushAfterCloseIsFailedPrecondition) {
  auto f = Make();
  auto producer = f->Attach(RingRole::kProducer);
  ASSERT_TRUE(producer->CloseProducer().ok());
  EXPECT_EQ(producer->Push("late", kShort).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(RingContract, WrongRoleIsFailedPrecondition) {
  auto f = Make();
  auto producer = f->Attach(RingRole::kProducer);
  auto consumer = f->Attach(RingRole::kConsumer);
  EXPECT_EQ(producer->TryPop().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(consumer->TryPush("x").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(RingContract, EndOfStreamComesAfterEveryProducerClosedAndTheRingDrained) {
  auto f = Make();
  auto consumer = f->Attach(RingRole::kConsumer);
  // No producer yet: empty, not ended.
  EXPECT_EQ(consumer->TryPop().status().code(), absl::StatusCode::kUnavailable);
  auto p1 = f->Attach(RingRole::kProducer);
  auto p2 = f->Attach(RingRole::kProducer);
  ASSERT_TRUE(p1->Push("one", kLong).ok());
  ASSERT_TRUE(p1->CloseProducer().ok());
  ASSERT_TRUE(consumer->Pop(kLong).ok());
  EXPECT_EQ(consumer->TryPop().status().code(), absl::StatusCode::kUnavailable);  // p2 still open
  ASSERT_TRUE(p2->Push("two", kLong).ok());
  ASSERT_TRUE(p2->CloseProducer().ok());
  EXPECT_FALSE(consumer->Stats().end_of_stream);
  absl::StatusOr<RingMessage> two = consumer->Pop(kLong);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->payload, "two");
  EXPECT_EQ(consumer->Pop(kLong).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(consumer->TryPop().status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(consumer->Stats().end_of_stream);
}

TEST_P(RingContract, BlockedPopWakesUpAtEndOfStream) {
  auto f = Make();
  auto consumer = f->Attach(RingRole::kConsumer);
  auto producer = f->Attach(RingRole::kProducer);
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(30));
    ASSERT_TRUE(producer->CloseProducer().ok());
  });
  const absl::Time start = absl::Now();
  EXPECT_EQ(consumer->Pop(kLong).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  closer.join();
}

TEST_P(RingContract, ExpectedProducersDelayEndOfStream) {
  auto f = Make({.expected_producers = 2});
  auto consumer = f->Attach(RingRole::kConsumer);
  auto p1 = f->Attach(RingRole::kProducer);
  ASSERT_TRUE(p1->CloseProducer().ok());
  EXPECT_EQ(consumer->TryPop().status().code(), absl::StatusCode::kUnavailable);
  auto p2 = f->Attach(RingRole::kProducer);
  ASSERT_TRUE(p2->CloseProducer().ok());
  EXPECT_EQ(consumer->TryPop().status().code(), absl::StatusCode::kOutOfRange);
}

TEST_P(RingContract, DestroyedProducerCountsAsDiedAndEndsTheStream) {
  auto f = Make();
  auto consumer = f->Attach(RingRole::kConsumer);
  {
    auto producer = f->Attach(RingRole::kProducer);
    ASSERT_TRUE(producer->Push("last words", kLong).ok());
  }
  EXPECT_EQ(consumer->Pop(kLong)->payload, "last words");
  EXPECT_EQ(consumer->TryPop().status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(consumer->Stats().producers_died, 1u);
}

TEST_P(RingContract, AcknowledgedMessageOfADestroyedConsumerIsRedelivered) {
  auto f = Make({.mode = DeliveryMode::kAcknowledged});
  auto producer = f->Attach(RingRole::kProducer);
  auto survivor = f->Attach(RingRole::kConsumer);
  ASSERT_TRUE(producer->Push("precious", kLong).ok());
  ASSERT_TRUE(producer->Push("second", kLong).ok());
  {
    auto doomed = f->Attach(RingRole::kConsumer);
    absl::StatusOr<RingMessage> m = doomed->Pop(kLong);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->payload, "precious");
    EXPECT_NE(m->ticket, 0u);
    EXPECT_EQ(producer->Stats().in_flight, 1u);
  }
  absl::StatusOr<RingMessage> again = survivor->Pop(kLong);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->payload, "precious");  // redelivered ahead of newer messages
  EXPECT_EQ(again->delivery_count, 2u);
  ASSERT_TRUE(survivor->Ack(again->ticket).ok());
  absl::StatusOr<RingMessage> second = survivor->Pop(kLong);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->delivery_count, 1u);
  ASSERT_TRUE(survivor->Ack(second->ticket).ok());
  const RingStats stats = survivor->Stats();
  EXPECT_EQ(stats.redelivered, 1u);
  EXPECT_EQ(stats.acked, 2u);
  EXPECT_EQ(stats.in_flight, 0u);
}

TEST_P(RingContract, NoEndOfStreamWhileAMessageIsUnacknowledged) {
  auto f = Make({.mode = DeliveryMode::kAcknowledged});
  auto producer = f->Attach(RingRole::kProducer);
  auto c1 = f->Attach(RingRole::kConsumer);
  auto c2 = f->Attach(RingRole::kConsumer);
  ASSERT_TRUE(producer->Push("m", kLong).ok());
  ASSERT_TRUE(producer->CloseProducer().ok());
  absl::StatusOr<RingMessage> m = c1->Pop(kLong);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(c2->TryPop().status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(c1->Ack(m->ticket).ok());
  EXPECT_EQ(c2->TryPop().status().code(), absl::StatusCode::kOutOfRange);
}

TEST_P(RingContract, AckOfATicketNotHeldIsNotFound) {
  auto f = Make({.mode = DeliveryMode::kAcknowledged});
  auto producer = f->Attach(RingRole::kProducer);
  auto c1 = f->Attach(RingRole::kConsumer);
  auto c2 = f->Attach(RingRole::kConsumer);
  ASSERT_TRUE(producer->Push("m", kLong).ok());
  absl::StatusOr<RingMessage> m = c1->Pop(kLong);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(c2->Ack(m->ticket).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c1->Ack(m->ticket + 12345).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(c1->Ack(m->ticket).ok());
  EXPECT_EQ(c1->Ack(m->ticket).code(), absl::StatusCode::kNotFound);  // twice
}

TEST_P(RingContract, VariableSizesWrapAroundASmallRingManyTimes) {
  auto f = Make({.capacity_bytes = 8192});
  auto producer = f->Attach(RingRole::kProducer);
  auto consumer = f->Attach(RingRole::kConsumer);
  std::thread push([&] {
    for (int i = 0; i < 3000; ++i) {
      const std::string payload = absl::StrCat(i, ":", std::string((i * 37) % 3000, 'a' + i % 26));
      ASSERT_TRUE(producer->Push(payload, kLong).ok()) << i;
    }
    ASSERT_TRUE(producer->CloseProducer().ok());
  });
  for (int i = 0; i < 3000; ++i) {
    absl::StatusOr<RingMessage> m = consumer->Pop(kLong);
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_EQ(m->payload, absl::StrCat(i, ":", std::string((i * 37) % 3000, 'a' + i % 26)));
  }
  EXPECT_EQ(consumer->Pop(kLong).status().code(), absl::StatusCode::kOutOfRange);
  push.join();
}

TEST_P(RingContract, ManyProducersAndConsumersDeliverEachMessageOnceInProducerOrder) {
  constexpr int kProducers = 4, kConsumers = 4, kEach = 2000;
  auto f = Make({.capacity_bytes = 1 << 15});
  std::vector<std::unique_ptr<MessageRing>> producers, consumers;
  for (int i = 0; i < kProducers; ++i) producers.push_back(f->Attach(RingRole::kProducer));
  for (int i = 0; i < kConsumers; ++i) consumers.push_back(f->Attach(RingRole::kConsumer));
  std::vector<std::thread> threads;
  std::vector<std::vector<int>> seen(kConsumers * kProducers);
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kEach; ++i) {
        ASSERT_TRUE(producers[p]->Push(absl::StrCat(p, " ", i, std::string(i % 200, '.')), kLong).ok());
      }
      ASSERT_TRUE(producers[p]->CloseProducer().ok());
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      while (true) {
        absl::StatusOr<RingMessage> m = consumers[c]->Pop(kLong);
        if (absl::IsOutOfRange(m.status())) break;
        ASSERT_TRUE(m.ok()) << m.status();
        int p = 0, i = 0;
        ASSERT_EQ(sscanf(m->payload.c_str(), "%d %d", &p, &i), 2);
        seen[c * kProducers + p].push_back(i);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<int> count(kProducers * kEach, 0);
  for (int c = 0; c < kConsumers; ++c) {
    for (int p = 0; p < kProducers; ++p) {
      const std::vector<int>& s = seen[c * kProducers + p];
      for (size_t k = 0; k < s.size(); ++k) {
        if (k > 0) {
          EXPECT_LT(s[k - 1], s[k]) << "consumer " << c << " producer " << p;
        }
        ++count[p * kEach + s[k]];
      }
    }
  }
  for (int k = 0; k < kProducers * kEach; ++k) ASSERT_EQ(count[k], 1) << "message " << k;
}

INSTANTIATE_TEST_SUITE_P(
    Implementations, RingContract,
    ::testing::Values(FactoryMaker([](const RingConfig& c) -> std::unique_ptr<RingFactory> {
                        return std::make_unique<InProcessFactory>(c);
                      }),
                      FactoryMaker([](const RingConfig& c) -> std::unique_ptr<RingFactory> {
                        return std::make_unique<ShmFactory>(c);
                      })),
    [](const ::testing::TestParamInfo<FactoryMaker>& info) {
      return info.index == 0 ? std::string("InProcessRing") : std::string("ShmRing");
    });

}  // namespace
}  // namespace moerl
