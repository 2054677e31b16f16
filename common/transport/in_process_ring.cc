// InProcessRing: one mutex, two condition variables, a deque and a map of
// messages in flight.
#include "common/transport/in_process_ring.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moerl {

struct Entry {
  std::string payload;
  uint64_t ticket = 0;
  uint32_t delivery_count = 1;
};

class InProcessRing::Channel {
 public:
  explicit Channel(const Options& options) : options(options) {
    counters.expected_producers = options.expected_producers;
  }

  static uint64_t Cost(size_t payload_bytes) { return payload_bytes + kOverheadBytes; }

  // `counters`, with the depths read off the containers that hold the messages.
  RingCounters Counters() const {
    RingCounters r = counters;
    r.depth_messages = queue.size();
    r.in_flight = in_flight.size();
    return r;
  }
  bool EndOfStream() const { return Counters().EndOfStream(); }

  const Options options;
  mutable std::mutex mu;
  std::condition_variable not_empty;
  std::condition_variable not_full;
  std::deque<Entry> queue;
  std::map<uint64_t, Entry> in_flight;
  uint64_t used_bytes = 0;
  uint64_t next_ticket = 1;
  RingCounters counters;  // depth_messages and in_flight unused: see Counters()
};

namespace {

// Waits on `cv` until `ready()` or the timeout; false on timeout.
template <typename Ready>
bool WaitFor(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
             absl::Duration timeout, Ready ready) {
  if (timeout == absl::InfiniteDuration()) {
    cv.wait(lock, ready);
    return true;
  }
  return cv.wait_for(lock, absl::ToChronoNanoseconds(timeout), ready);
}

}  // namespace

std::shared_ptr<InProcessRing::Channel> InProcessRing::CreateChannel(const Options& options) {
  return std::make_shared<Channel>(options);
}

std::unique_ptr<InProcessRing> InProcessRing::Attach(std::shared_ptr<Channel> channel,
                                                     RingRole role) {
  return std::unique_ptr<InProcessRing>(new InProcessRing(std::move(channel), role));
}

InProcessRing::InProcessRing(std::shared_ptr<Channel> channel, RingRole role)
    : channel_(std::move(channel)), role_(role) {
  std::lock_guard<std::mutex> lock(channel_->mu);
  if (RingRoleProduces(role_)) ++channel_->counters.producers_registered;
  if (RingRoleConsumes(role_)) ++channel_->counters.consumers;
}

InProcessRing::~InProcessRing() {
  Channel& c = *channel_;
  std::lock_guard<std::mutex> lock(c.mu);
  if (RingRoleProduces(role_) && !producer_closed_) ++c.counters.producers_died;
  if (RingRoleConsumes(role_)) {
    --c.counters.consumers;
    // Give back what this consumer held, oldest first, ahead of newer messages.
    for (auto it = held_tickets_.rbegin(); it != held_tickets_.rend(); ++it) {
      auto found = c.in_flight.find(*it);
      if (found == c.in_flight.end()) continue;
      Entry entry = std::move(found->second);
      c.in_flight.erase(found);
      ++entry.delivery_count;
      ++c.counters.redelivered;
      c.counters.depth_bytes += entry.payload.size();
      c.queue.push_front(std::move(entry));
    }
  }
  c.not_empty.notify_all();
  c.not_full.notify_all();
}

absl::Status InProcessRing::Push(absl::string_view payload, absl::Duration timeout) {
  return PushImpl(payload, timeout);
}

absl::Status InProcessRing::TryPush(absl::string_view payload) {
  return PushImpl(payload, absl::ZeroDuration());
}

absl::Status InProcessRing::PushImpl(absl::string_view payload, absl::Duration timeout) {
  Channel& c = *channel_;
  if (!RingRoleProduces(role_)) {
    return absl::FailedPreconditionError("Push on a ring participant that is not a producer");
  }
  if (producer_closed_) {
    return absl::FailedPreconditionError("Push after CloseProducer");
  }
  const uint64_t cost = Channel::Cost(payload.size());
  if (cost > c.options.capacity_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message of ", payload.size(), " bytes does not fit a ring of ",
        c.options.capacity_bytes, " bytes (largest: ", c.options.capacity_bytes - kOverheadBytes,
        ")"));
  }
  std::unique_lock<std::mutex> lock(c.mu);
  const bool fits = WaitFor(c.not_full, lock, timeout, [&] {
    return c.used_bytes + cost <= c.options.capacity_bytes;
  });
  if (!fits) {
    if (timeout == absl::ZeroDuration()) {
      return absl::ResourceExhaustedError("ring is full");
    }
    return absl::DeadlineExceededError(
        absl::StrCat("ring still full after ", absl::FormatDuration(timeout)));
  }
  Entry entry;
  entry.payload.assign(payload.data(), payload.size());
  entry.ticket = c.next_ticket++;
  c.used_bytes += cost;
  c.counters.depth_bytes += payload.size();
  ++c.counters.pushed;
  c.queue.push_back(std::move(entry));
  c.not_empty.notify_one();
  return absl::OkStatus();
}

absl::Status InProcessRing::CloseProducer() {
  if (!RingRoleProduces(role_)) {
    return absl::FailedPreconditionError("CloseProducer on a participant that is not a producer");
  }
  if (producer_closed_) return absl::OkStatus();
  producer_closed_ = true;
  std::lock_guard<std::mutex> lock(channel_->mu);
  ++channel_->counters.producers_closed;
  channel_->not_empty.notify_all();
  return absl::OkStatus();
}

absl::StatusOr<RingMessage> InProcessRing::Pop(absl::Duration timeout) { return PopImpl(timeout); }

absl::StatusOr<RingMessage> InProcessRing::TryPop() { return PopImpl(absl::ZeroDuration()); }

absl::StatusOr<RingMessage> InProcessRing::PopImpl(absl::Duration timeout) {
  Channel& c = *channel_;
  if (!RingRoleConsumes(role_)) {
    return absl::FailedPreconditionError("Pop on a ring participant that is not a consumer");
  }
  std::unique_lock<std::mutex> lock(c.mu);
  WaitFor(c.not_empty, lock, timeout, [&] { return !c.queue.empty() || c.EndOfStream(); });
  if (c.queue.empty()) {
    if (c.EndOfStream()) return absl::OutOfRangeError("end of stream: every producer closed");
    if (timeout == absl::ZeroDuration()) return absl::UnavailableError("ring is empty");
    return absl::DeadlineExceededError(
        absl::StrCat("no message after ", absl::FormatDuration(timeout)));
  }
  Entry entry = std::move(c.queue.front());
  c.queue.pop_front();
  c.counters.depth_bytes -= entry.payload.size();
  ++c.counters.popped;
  RingMessage message;
  message.delivery_count = entry.delivery_count;
  if (c.options.mode == DeliveryMode::kAcknowledged) {
    message.ticket = entry.ticket;
    message.payload = entry.payload;
    held_tickets_.insert(entry.ticket);
    c.in_flight.emplace(entry.ticket, std::move(entry));
  } else {
    c.used_bytes -= Channel::Cost(entry.payload.size());
    message.payload = std::move(entry.payload);
    c.not_full.notify_one();
    if (c.EndOfStream()) c.not_empty.notify_all();
  }
  return message;
}

absl::Status InProcessRing::Ack(uint64_t ticket) {
  Channel& c = *channel_;
  if (c.options.mode == DeliveryMode::kPlain) return absl::OkStatus();
  if (held_tickets_.erase(ticket) == 0) {
    return absl::NotFoundError(absl::StrCat("ticket ", ticket, " is not held by this consumer"));
  }
  std::lock_guard<std::mutex> lock(c.mu);
  auto found = c.in_flight.find(ticket);
  if (found != c.in_flight.end()) {
    c.used_bytes -= Channel::Cost(found->second.payload.size());
    c.in_flight.erase(found);
  }
  ++c.counters.acked;
  c.not_full.notify_all();
  if (c.EndOfStream()) c.not_empty.notify_all();
  return absl::OkStatus();
}

DeliveryMode InProcessRing::delivery_mode() const { return channel_->options.mode; }

RingStats InProcessRing::Stats() const {
  const Channel& c = *channel_;
  std::lock_guard<std::mutex> lock(c.mu);
  return c.Counters().ToStats(c.options.capacity_bytes, c.options.capacity_bytes - kOverheadBytes);
}

}  // namespace moerl
