// Test helper: a fresh in-process ring channel (common/transport/
// in_process_ring.h) for unit tests of a stage that reads or writes a
// MessageRing, without shared memory.
//
//   auto prompts = NewChannel(DeliveryMode::kAcknowledged);
//   auto producer = InProcessRing::Attach(prompts, RingRole::kProducer);
//   auto consumer = InProcessRing::Attach(prompts, RingRole::kConsumer);
//
//   // Or a channel with one producer and one consumer attached:
//   auto [channel, producer, consumer] = NewRingPair(DeliveryMode::kPlain);
//
// Each call makes an independent channel; ownership is shared by the
// returned pointer and every participant attached to it (see InProcessRing
// for threading).
#ifndef MOERL_COMMON_TESTING_RING_CHANNEL_H_
#define MOERL_COMMON_TESTING_RING_CHANNEL_H_

#include <cstdint>
#include <memory>

#include "common/transport/in_process_ring.h"

namespace moerl {

// A channel of `mode` holding up to `capacity_bytes` (1 MiB by default).
std::shared_ptr<InProcessRing::Channel> NewChannel(DeliveryMode mode,
                                                   uint64_t capacity_bytes = 1 << 20);

struct RingPair {
  std::shared_ptr<InProcessRing::Channel> channel;  // to attach more participants
  std::unique_ptr<MessageRing> producer;
  std::unique_ptr<MessageRing> consumer;
};

// NewChannel plus one producer and one consumer.
RingPair NewRingPair(DeliveryMode mode, uint64_t capacity_bytes = 1 << 20);

}  // namespace moerl

#endif  // MOERL_COMMON_TESTING_RING_CHANNEL_H_
