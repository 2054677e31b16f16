// InProcessRing: the MessageRing contract inside one process, so that a
// stage library can be unit-tested without shared memory. Same status codes,
// same end-of-stream and delivery rules as ShmRing (message_ring.h); the
// shared queue is a Channel object instead of a named segment.
//
//   auto channel = InProcessRing::CreateChannel({.capacity_bytes = 1 << 20,
//                                                .mode = DeliveryMode::kAcknowledged});
//   std::unique_ptr<MessageRing> producer = InProcessRing::Attach(channel, RingRole::kProducer);
//   std::unique_ptr<MessageRing> consumer = InProcessRing::Attach(channel, RingRole::kConsumer);
//   MOERL_RETURN_IF_ERROR(producer->Push("hello", absl::Seconds(1)));
//   MOERL_RETURN_IF_ERROR(producer->CloseProducer());
//   absl::StatusOr<RingMessage> m = consumer->Pop(absl::Seconds(1));   // "hello"
//   MOERL_RETURN_IF_ERROR(consumer->Ack(m->ticket));
//   consumer->Pop(absl::Seconds(1)).status();   // kOutOfRange: end of stream
//
// A crash is simulated by destroying a participant: a producer destroyed
// without CloseProducer counts as died; a consumer destroyed while holding
// unacknowledged messages gives them back for redelivery.
//
// Threading and ownership: each participant object is used by one thread at
// a time; participants on one channel may live on different threads. The
// channel lives as long as its longest-lived participant or holder.
#ifndef MOERL_COMMON_TRANSPORT_IN_PROCESS_RING_H_
#define MOERL_COMMON_TRANSPORT_IN_PROCESS_RING_H_

#include <cstdint>
#include <memory>
#include <set>

#include "common/transport/message_ring.h"

namespace moerl {

class InProcessRing : public MessageRing {
 public:
  struct Options {
    // Queued plus unacknowledged messages, each counted as its payload plus
    // kOverheadBytes, fit in this many bytes.
    uint64_t capacity_bytes = 1 << 20;
    DeliveryMode mode = DeliveryMode::kPlain;
    // End of stream waits for this many producer registrations (0: one).
    uint32_t expected_producers = 0;
  };
  static constexpr uint64_t kOverheadBytes = 32;

  class Channel;

  static std::shared_ptr<Channel> CreateChannel(const Options& options);
  static std::unique_ptr<InProcessRing> Attach(std::shared_ptr<Channel> channel, RingRole role);

  ~InProcessRing() override;

  absl::Status Push(absl::string_view payload, absl::Duration timeout) override;
  absl::Status TryPush(absl::string_view payload) override;
  absl::Status CloseProducer() override;
  absl::StatusOr<RingMessage> Pop(absl::Duration timeout) override;
  absl::StatusOr<RingMessage> TryPop() override;
  absl::Status Ack(uint64_t ticket) override;
  DeliveryMode delivery_mode() const override;
  RingStats Stats() const override;

 private:
  InProcessRing(std::shared_ptr<Channel> channel, RingRole role);
  absl::Status PushImpl(absl::string_view payload, absl::Duration timeout);
  absl::StatusOr<RingMessage> PopImpl(absl::Duration timeout);

  std::shared_ptr<Channel> channel_;
  RingRole role_;
  bool producer_closed_ = false;
  std::set<uint64_t> held_tickets_;  // acknowledged mode
};

}  // namespace moerl

#endif  // MOERL_COMMON_TRANSPORT_IN_PROCESS_RING_H_
