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
  uint32_t producers_open = 0;
  uint32_t producers_closed = 0;
  bool end_of_stream = false;
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
