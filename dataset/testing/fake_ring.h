// FakeRing: a test-only, in-process MessageRing (plain or acknowledged
// delivery) for the feeder and scorer tests, until common/transport's
// InProcessRing lands. Several handles share one FakeRingState, as several
// processes share one ShmRing; Abandon() plays a consumer that dies holding
// messages (they are delivered again, with delivery_count + 1).
//
//   auto state = std::make_shared<FakeRingState>(DeliveryMode::kAcknowledged, /*capacity=*/64);
//   FakeRing producer(state, /*producer=*/true), consumer(state, /*producer=*/false);
//   producer.Push("a", absl::Seconds(1)); producer.CloseProducer();
//   absl::StatusOr<RingMessage> m = consumer.Pop(absl::Seconds(1));
//   consumer.Ack(m->ticket);
//   consumer.Pop(...)  // kOutOfRange: end of stream
//
// Thread-safe: the state is guarded by a mutex; each handle is used by one
// thread, as the MessageRing contract says. Capacity counts messages.
#ifndef MOERL_DATASET_TESTING_FAKE_RING_H_
#define MOERL_DATASET_TESTING_FAKE_RING_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/transport/message_ring.h"

namespace moerl {

class FakeRingState {
 public:
  FakeRingState(DeliveryMode mode, size_t capacity_messages)
      : mode_(mode), capacity_(capacity_messages) {}

 private:
  friend class FakeRing;
  struct Queued {
    std::string payload;
    uint32_t delivery_count = 1;
  };
  const DeliveryMode mode_;
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Queued> in_flight_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  RingStats stats_ ABSL_GUARDED_BY(mu_);
};

class FakeRing : public MessageRing {
 public:
  // A producer handle counts as an attached producer until CloseProducer.
  FakeRing(std::shared_ptr<FakeRingState> state, bool producer);

  absl::Status Push(absl::string_view payload, absl::Duration timeout) override;
  absl::Status TryPush(absl::string_view payload) override;
  absl::Status CloseProducer() override;
  absl::StatusOr<RingMessage> Pop(absl::Duration timeout) override;
  absl::StatusOr<RingMessage> TryPop() override;
  absl::Status Ack(uint64_t ticket) override;
  DeliveryMode delivery_mode() const override { return state_->mode_; }
  RingStats Stats() const override;

  // This consumer "dies": every message it holds unacknowledged goes back
  // to the front of the queue for another consumer.
  void Abandon();

 private:
  absl::StatusOr<RingMessage> PopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu_);
  bool EndOfStreamLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu_);

  std::shared_ptr<FakeRingState> state_;
  bool producer_open_;
  std::set<uint64_t> my_tickets_;
};

}  // namespace moerl

#endif  // MOERL_DATASET_TESTING_FAKE_RING_H_
