#include "common/testing/ring_channel.h"

namespace moerl {

std::shared_ptr<InProcessRing::Channel> NewChannel(DeliveryMode mode, uint64_t capacity_bytes) {
  InProcessRing::Options options;
  options.capacity_bytes = capacity_bytes;
  options.mode = mode;
  return InProcessRing::CreateChannel(options);
}

RingPair NewRingPair(DeliveryMode mode, uint64_t capacity_bytes) {
  RingPair pair;
  pair.channel = NewChannel(mode, capacity_bytes);
  pair.producer = InProcessRing::Attach(pair.channel, RingRole::kProducer);
  pair.consumer = InProcessRing::Attach(pair.channel, RingRole::kConsumer);
  return pair;
}

}  // namespace moerl
