#include "dataset/testing/fake_ring.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace moerl {

FakeRing::FakeRing(std::shared_ptr<FakeRingState> state, bool producer)
    : state_(std::move(state)), producer_open_(producer) {
  absl::MutexLock lock(&state_->mu_);
  if (producer) ++state_->stats_.producers_open;
}

absl::Status FakeRing::Push(absl::string_view payload, absl::Duration timeout) {
  absl::MutexLock lock(&state_->mu_);
  if (!producer_open_) return absl::FailedPreconditionError("push after CloseProducer");
  auto has_space = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu_) {
    return state_->queue_.size() + state_->in_flight_.size() < state_->capacity_;
  };
  if (!state_->mu_.AwaitWithTimeout(absl::Condition(&has_space), timeout)) {
    return absl::DeadlineExceededError("ring full");
  }
  state_->queue_.push_back({std::string(payload), 1});
  ++state_->stats_.pushed;
  return absl::OkStatus();
}

absl::Status FakeRing::TryPush(absl::string_view payload) {
  {
    absl::MutexLock lock(&state_->mu_);
    if (state_->queue_.size() + state_->in_flight_.size() >= state_->capacity_) {
      return absl::ResourceExhaustedError("ring full");
    }
  }
  return Push(payload, absl::ZeroDuration());
}

absl::Status FakeRing::CloseProducer() {
  absl::MutexLock lock(&state_->mu_);
  if (!producer_open_) return absl::OkStatus();
  producer_open_ = false;
  --state_->stats_.producers_open;
  ++state_->stats_.producers_closed;
  return absl::OkStatus();
}

bool FakeRing::EndOfStreamLocked() const {
  return state_->stats_.producers_open == 0 && state_->stats_.producers_closed > 0 &&
         state_->queue_.empty() && state_->in_flight_.empty();
}

absl::StatusOr<RingMessage> FakeRing::PopLocked() {
  FakeRingState::Queued queued = std::move(state_->queue_.front());
  state_->queue_.pop_front();
  ++state_->stats_.popped;
  RingMessage message;
  message.delivery_count = queued.delivery_count;
  if (state_->mode_ == DeliveryMode::kAcknowledged) {
    message.ticket = state_->next_ticket_++;
    message.payload = queued.payload;
    state_->in_flight_.emplace(message.ticket, std::move(queued));
    my_tickets_.insert(message.ticket);
  } else {
    message.payload = std::move(queued.payload);
  }
  return message;
}

absl::StatusOr<RingMessage> FakeRing::Pop(absl::Duration timeout) {
  absl::MutexLock lock(&state_->mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu_) {
    return !state_->queue_.empty() || EndOfStreamLocked();
  };
  if (!state_->mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) {
    return absl::DeadlineExceededError("ring empty");
  }
  if (state_->queue_.empty()) return absl::OutOfRangeError("end of stream");
  return PopLocked();
}

absl::StatusOr<RingMessage> FakeRing::TryPop() {
  absl::MutexLock lock(&state_->mu_);
  if (!state_->queue_.empty()) return PopLocked();
  if (EndOfStreamLocked()) return absl::OutOfRangeError("end of stream");
  return absl::UnavailableError("ring empty");
}

absl::Status FakeRing::Ack(uint64_t ticket) {
  absl::MutexLock lock(&state_->mu_);
  if (state_->mode_ == DeliveryMode::kPlain) return absl::OkStatus();
  if (my_tickets_.erase(ticket) == 0 || state_->in_flight_.erase(ticket) == 0) {
    return absl::NotFoundError(absl::StrCat("no message in flight with ticket ", ticket));
  }
  ++state_->stats_.acked;
  return absl::OkStatus();
}

RingStats FakeRing::Stats() const {
  absl::MutexLock lock(&state_->mu_);
  RingStats stats = state_->stats_;
  stats.capacity_bytes = state_->capacity_;
  stats.depth_messages = state_->queue_.size();
  stats.in_flight = state_->in_flight_.size();
  stats.end_of_stream = EndOfStreamLocked();
  return stats;
}

void FakeRing::Abandon() {
  absl::MutexLock lock(&state_->mu_);
  for (auto it = my_tickets_.rbegin(); it != my_tickets_.rend(); ++it) {
    auto node = state_->in_flight_.extract(*it);
    if (node.empty()) continue;
    ++node.mapped().delivery_count;
    state_->queue_.push_front(std::move(node.mapped()));
    ++state_->stats_.redelivered;
  }
  my_tickets_.clear();
}

}  // namespace moerl
