// MessageRing: the interface every stage uses to hand messages to the next.
//
// Two implementations: ShmRing (common/transport/shm_ring.h), a named POSIX
// shared-memory segment shared by processes of one node, and InProcessRing
// (common/transport/in_process_ring.h), for unit tests of a single stage.
//
//   MOERL_ASSIGN_OR_RETURN(auto ring, ShmRing::Open(name, ...));
//   MOERL_RETURN_IF_ERROR(ring->Push(bytes, absl::Seconds(5)));
//   ...
//   absl::StatusOr<RingMessage> m = ring->Pop(absl::Seconds(5));
//   if (absl::IsOutOfRange(m.status())) { /* end of stream: all producers closed */ }
//   MOERL_RETURN_IF_ERROR(ring->Ack(m->ticket));   // acknowledged mode only
//
// Status codes (the contract both implementations keep):
//   Push/Pop on timeout ........... kDeadlineExceeded
//   TryPush when full ............. kResourceExhausted
//   TryPop when empty ............. kUnavailable
//   Pop/TryPop at end of stream ... kOutOfRange (every producer closed and
//                                   nothing is left, nor in flight)
//   Push after this producer closed kFailedPrecondition
//   a message larger than the ring  kInvalidArgument
//   Ack of a ticket not held ...... kNotFound (not this participant's, or
//                                   already acknowledged)
//   Push/CloseProducer on a consumer-only, Pop on a producer-only
//   participant ................... kFailedPrecondition
//
// Participants and end of stream. A MessageRing object is one participant,
// attached with a RingRole. A producer registers when it attaches (not at its
// first Push), so a consumer that starts first cannot see an early end of
// stream as long as every producer attaches before the last one closes; a
// ring created with expected_producers = N additionally waits for N producer
// registrations before it can end. End of stream is reached when that many
// producers registered, every registered producer has closed (CloseProducer)
// or is gone (its process died, or its object was destroyed without closing;
// RingStats::producers_died counts those, so a consumer that needs to tell a
// clean end from a crashed producer can check it), nothing is queued and
// nothing is in flight.
//
// Delivery. Order is kept per producer: two messages pushed by one producer
// are taken in push order (with several consumers, they may of course finish
// in any order). A redelivered message is taken before newer ones. Destroying
// a consumer in acknowledged mode gives back the messages it holds (they are
// redelivered); a consumer process that dies does the same (ShmRing notices
// within ShmRing::kLivenessInterval of some participant waiting, and at least
// every 1024 Pops of a busy consumer).
//
// Threading: one MessageRing object is one participant (a producer, a
// consumer, or both) and is used by one thread at a time; several processes
// or objects may share the underlying ring.
#ifndef MOERL_COMMON_TRANSPORT_MESSAGE_RING_H_
#define MOERL_COMMON_TRANSPORT_MESSAGE_RING_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace moerl {

enum class DeliveryMode {
  // Each message is handed to exactly one consumer, once; a consumer that
  // dies holding one loses it.
  kPlain,
  // A message stays owned by the ring until its consumer calls Ack; if that
  // consumer dies first, it is delivered again to another consumer, with
  // delivery_count incremented.
  kAcknowledged,
};

// What a participant does on a ring; fixed when it attaches.
enum class RingRole {
  kProducer,
  kConsumer,
  kProducerAndConsumer,
  // Reads Stats only; not counted as a participant (tools/ring stat).
  kObserver,
};

inline bool RingRoleProduces(RingRole role) {
  return role == RingRole::kProducer || role == RingRole::kProducerAndConsumer;
}
inline bool RingRoleConsumes(RingRole role) {
  return role == RingRole::kConsumer || role == RingRole::kProducerAndConsumer;
}

struct RingMessage {
  std::string payload;
  // Identifies the delivery for Ack (acknowledged mode); 0 in plain mode.
  uint64_t ticket = 0;
  // 1 on first delivery, 2 after one redelivery, ...
  uint32_t delivery_count = 1;
};

// Counters readable from outside (`tools/ring stat`).
struct RingStats {
  uint64_t capacity_bytes = 0;
  uint64_t depth_messages = 0;  // queued, not yet taken
  uint64_t depth_bytes = 0;
  uint64_t in_flight = 0;  // taken, not yet acknowledged
  uint64_t pushed = 0;
  uint64_t popped = 0;
  uint64_t acked = 0;
  uint64_t redelivered = 0;
  uint32_t producers_open = 0;    // registered, neither closed nor gone
  uint32_t producers_closed = 0;  // closed with CloseProducer
  uint32_t producers_died = 0;    // gone without closing
  uint32_t consumers = 0;         // attached consumers
  uint64_t largest_message_bytes = 0;  // the largest payload Push accepts
  bool end_of_stream = false;
};

// The bookkeeping both implementations keep, and the two things derived
// from it the same way everywhere: end of stream and RingStats.
struct RingCounters {
  uint64_t depth_messages = 0, depth_bytes = 0, in_flight = 0;
  uint64_t pushed = 0, popped = 0, acked = 0, redelivered = 0;
  uint32_t producers_registered = 0, producers_closed = 0, producers_died = 0, consumers = 0;
  uint32_t expected_producers = 0;  // end of stream waits for this many registrations (0: one)

  // Every producer that was awaited registered and then closed or died, and
  // nothing is queued or held.
  bool EndOfStream() const {
    const uint32_t wanted = expected_producers > 0 ? expected_producers : 1;
    return producers_registered >= wanted && producers_closed + producers_died == producers_registered &&
           depth_messages == 0 && in_flight == 0;
  }

  RingStats ToStats(uint64_t capacity_bytes, uint64_t largest_message_bytes) const {
    RingStats r;
    r.capacity_bytes = capacity_bytes;
    r.depth_messages = depth_messages;
    r.depth_bytes = depth_bytes;
    r.in_flight = in_flight;
    r.pushed = pushed;
    r.popped = popped;
    r.acked = acked;
    r.redelivered = redelivered;
    r.producers_closed = producers_closed;
    r.producers_died = producers_died;
    r.producers_open = producers_registered - producers_closed - producers_died;
    r.consumers = consumers;
    r.largest_message_bytes = largest_message_bytes;
    r.end_of_stream = EndOfStream();
    return r;
  }
};

class MessageRing {
 public:
  virtual ~MessageRing() = default;

  // Producer side. Blocks (without spinning) while the ring is full.
  virtual absl::Status Push(absl::string_view payload, absl::Duration timeout) = 0;
  virtual absl::Status TryPush(absl::string_view payload) = 0;
  // This producer is done. When every producer that ever attached has
  // closed, consumers drain what is left and then get kOutOfRange.
  virtual absl::Status CloseProducer() = 0;

  // Consumer side. Blocks (without spinning) while the ring is empty.
  virtual absl::StatusOr<RingMessage> Pop(absl::Duration timeout) = 0;
  virtual absl::StatusOr<RingMessage> TryPop() = 0;
  // Acknowledged mode: the message with this ticket is done and may be
  // forgotten. Plain mode: a no-op that returns OK.
  virtual absl::Status Ack(uint64_t ticket) = 0;

  virtual DeliveryMode delivery_mode() const = 0;
  virtual RingStats Stats() const = 0;
};

}  // namespace moerl

#endif  // MOERL_COMMON_TRANSPORT_MESSAGE_RING_H_
