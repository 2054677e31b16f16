// TimedRing: a MessageRing that adds the time of every call to a
// StageTiming (common/stage_timing.h), telling the copy from the wait.
//
//   std::unique_ptr<ShmRing> ring = ...;
//   TimedRing timed(ring.get(), &timing);
//   stage.Run(timed);   // the stage sees an ordinary MessageRing
//
// A Push first tries TryPush: that call (the copy into the ring) is
// transport; when the ring is full, the blocking Push that follows is
// wait_output. A Pop likewise: TryPop is transport, the blocking Pop after an
// empty ring is wait_input (the copy of the message that ends the wait is
// counted in it: a few microseconds against the wait). Ack, TryPush and
// TryPop are transport; CloseProducer and Stats are not timed. The status
// codes are the inner ring's, so callers keep their contract.
//
// Threading: as the inner ring (one thread at a time); both are borrowed.
#ifndef MOERL_COMMON_TRANSPORT_TIMED_RING_H_
#define MOERL_COMMON_TRANSPORT_TIMED_RING_H_

#include "common/stage_timing.h"
#include "common/transport/message_ring.h"

namespace moerl {

class TimedRing : public MessageRing {
 public:
  TimedRing(MessageRing* inner, StageTiming* timing) : inner_(inner), timing_(timing) {}

  absl::Status Push(absl::string_view payload, absl::Duration timeout) override {
    const absl::Time start = timing_->Now();
    absl::Status status = inner_->TryPush(payload);
    const absl::Time tried = timing_->Now();
    timing_->Add(TimeBucket::kTransport, tried - start);
    if (!absl::IsResourceExhausted(status)) return status;
    status = inner_->Push(payload, timeout);
    timing_->Add(TimeBucket::kWaitOutput, timing_->Now() - tried);
    return status;
  }
  absl::Status TryPush(absl::string_view payload) override {
    ScopedStageTimer t(timing_, TimeBucket::kTransport);
    return inner_->TryPush(payload);
  }
  absl::Status CloseProducer() override { return inner_->CloseProducer(); }

  absl::StatusOr<RingMessage> Pop(absl::Duration timeout) override {
    const absl::Time start = timing_->Now();
    absl::StatusOr<RingMessage> message = inner_->TryPop();
    const absl::Time tried = timing_->Now();
    timing_->Add(TimeBucket::kTransport, tried - start);
    if (!absl::IsUnavailable(message.status())) return message;
    message = inner_->Pop(timeout);
    timing_->Add(TimeBucket::kWaitInput, timing_->Now() - tried);
    return message;
  }
  absl::StatusOr<RingMessage> TryPop() override {
    ScopedStageTimer t(timing_, TimeBucket::kTransport);
    return inner_->TryPop();
  }
  absl::Status Ack(uint64_t ticket) override {
    ScopedStageTimer t(timing_, TimeBucket::kTransport);
    return inner_->Ack(ticket);
  }

  DeliveryMode delivery_mode() const override { return inner_->delivery_mode(); }
  RingStats Stats() const override { return inner_->Stats(); }

 private:
  MessageRing* inner_;
  StageTiming* timing_;
};

}  // namespace moerl

#endif  // MOERL_COMMON_TRANSPORT_TIMED_RING_H_
