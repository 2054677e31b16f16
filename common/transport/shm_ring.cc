// ShmRing: the Push/Pop/Ack protocol on
// top of RingSegment (shm_ring_segment.h); creating and opening segments:
// shm_ring_create.cc; batches and views: shm_ring_fast.cc.
#include "common/transport/shm_ring.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <ctime>
#include <new>
#include <utility>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/transport/ring_checksum.h"
#include "common/transport/shm_ring_segment.h"
#include "common/transport/shm_ring_sync.h"

namespace moerl {
namespace bip = boost::interprocess;
using shm_ring_internal::kHeaderBytes;
using shm_ring_internal::RingSegment;
using shm_ring_internal::SegmentHeader;
using shm_ring_internal::SlotHeader;

namespace {

// How long a waiter polls the wake-up word before it sleeps on the futex.
// Short against the cost of a sleep and wake-up (two system calls, two
// context switches), too short to count as spinning a core.
constexpr int64_t kSpinNanos = 20000;
// While spinning, the other side's position is read every this many pauses.
constexpr int kPollEvery = 16;
// A producer spinning for room waits for capacity / kRoomWanted bytes (or
// for the end of the spin).
constexpr uint64_t kRoomWanted = 8;

// The deadline of a call, computed only once the call has to wait (reading
// the clock costs as much as an uncontended Push). *deadline is
// absl::InfinitePast() until then.
absl::Time DeadlineOf(absl::Duration timeout, absl::Time* deadline) {
  if (*deadline == absl::InfinitePast()) {
    *deadline = timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  }
  return *deadline;
}

// The wake-up word of one side (space: producers waiting for room) and the
// flag its sleepers set.
struct WakeWord {
  std::atomic<uint32_t>& seq;
  std::atomic<uint32_t>& sleeping;
};

WakeWord WakeWordOf(SegmentHeader* h, bool space) {
  return space ? WakeWord{h->not_full_seq, h->not_full_sleeping}
               : WakeWord{h->not_empty_seq, h->not_empty_sleeping};
}

}  // namespace

ShmRing::ShmRing(std::string name, std::unique_ptr<bip::mapped_region> region, RingRole role)
    : name_(std::move(name)), region_(std::move(region)), role_(role), pid_(::getpid()) {
  auto* base = static_cast<char*>(region_->get_address());
  segment_ = std::make_unique<RingSegment>(reinterpret_cast<SegmentHeader*>(base), base + kHeaderBytes,
                                           shm_ring_internal::PidNamespaceId());
  segment_->RefreshTail();
}

ShmRing::~ShmRing() {
  if (self_ == shm_ring_internal::kNoOwner) return;
  // A producer is deregistered with both locks held (shm_ring_segment.h).
  const bool producer = RingRoleProduces(role_);
  if (producer && !LockProducer().ok()) return;
  if (!Lock().ok()) {
    if (producer) UnlockProducer();
    return;
  }
  segment_->Deregister(self_);
  Unlock();
  if (producer) UnlockProducer();
  Wake(/*space=*/true);
  Wake(/*space=*/false);
}

absl::Status ShmRing::Lock() const {
  bool owner_died = false;
  MOERL_RETURN_IF_ERROR(shm_ring_internal::LockRobustMutex(&segment_->header()->mutex, &owner_died));
  if (owner_died) segment_->RecoverJournal();
  // `tail` is reloaded when a walk finds nothing below it (TakeLocked,
  // WaitLocked), not on every lock: each load pulls the producers' line.
  segment_->RefreshTailIfBehind();
  if (!segment_->CheckState()) {
    Unlock();
    return DamageStatus();
  }
  if (owner_died) {
    segment_->SweepDead(pid_, producer_locked_);
    Wake(true);
    Wake(false);
  }
  return absl::OkStatus();
}

absl::Status ShmRing::LockProducer() {
  bool owner_died = false;
  MOERL_RETURN_IF_ERROR(
      shm_ring_internal::LockRobustMutex(&segment_->header()->producer_mutex, &owner_died));
  producer_locked_ = true;
  // A replay may publish messages: tell consumers that sleep.
  if (owner_died && segment_->RecoverProducerJournal()) WakeMoved(/*space=*/false);
  if (!segment_->CheckProducerState()) return UnlockProducerWithDamage();
  return absl::OkStatus();
}

void ShmRing::UnlockProducer() {
  producer_locked_ = false;
  shm_ring_internal::UnlockRobustMutex(&segment_->header()->producer_mutex);
}

absl::Status ShmRing::UnlockProducerWithDamage() {
  UnlockProducer();
  return DamageStatus();
}

absl::Status ShmRing::DamageStatus() const {
  return absl::DataLossError(absl::StrCat("ring ", name_, ": ", segment_->damage().message(),
                                          "; nothing more is read from it (remove it with: bazel run "
                                          "//tools/ring -- remove ",
                                          name_, ")"));
}

absl::Status ShmRing::UnlockWithDamage() const {
  Unlock();
  return DamageStatus();
}

void ShmRing::Unlock() const { shm_ring_internal::UnlockRobustMutex(&segment_->header()->mutex); }

void ShmRing::Wake(bool space) const {
  auto [seq, sleeping] = WakeWordOf(segment_->header(), space);
  seq.fetch_add(1, std::memory_order_seq_cst);
  // One system call per sleeping episode, not per message: the first waker
  // clears the flag and wakes every sleeper; each re-checks and, if there is
  // still nothing for it, sets the flag again before sleeping. (A sleeper
  // that sets the flag after this exchange sees the new `seq` in FutexWait.)
  if (sleeping.load(std::memory_order_seq_cst) != 0 && sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
    shm_ring_internal::FutexWake(&seq, INT_MAX);
  }
}

void ShmRing::WakeMoved(bool space) const {
  auto [seq, sleeping] = WakeWordOf(segment_->header(), space);
  // Pairs with WaitLocked's store of `sleeping` and its re-read of the
  // position: either the sleeper sees the move, or this sees the flag.
  shm_ring_internal::FullFence();
  if (sleeping.load(std::memory_order_relaxed) != 0 && sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
    seq.fetch_add(1, std::memory_order_seq_cst);
    shm_ring_internal::FutexWake(&seq, INT_MAX);
  }
}

void ShmRing::UnlockAfterFreeing() const {
  const bool end = segment_->EndOfStream();
  Unlock();
  WakeMoved(/*space=*/true);
  if (end) Wake(/*space=*/false);
}

bool ShmRing::SweepDue() const {
  const int64_t last = segment_->header()->last_sweep_ns.load(std::memory_order_relaxed);
  return shm_ring_internal::MonotonicNanos() - last >= absl::ToInt64Nanoseconds(kLivenessInterval);
}

absl::Status ShmRing::WaitLocked(bool for_space, absl::Time deadline) {
  auto [seq, sleeping] = WakeWordOf(segment_->header(), for_space);
  const uint32_t seen = seq.load(std::memory_order_acquire);
  // The other side moves what we wait for (free_pos, tail) without our
  // lock: look again now that `seen` is read. (Its Wake changes `seq` after
  // the move, so a move not seen here changes `seq` after `seen`.)
  uint64_t position;  // tail or free_pos: what the other side moves
  if (for_space) {
    if (segment_->RefreshFreePos()) return segment_->damage().ok() ? absl::OkStatus() : UnlockProducerWithDamage();
    position = segment_->free_pos_seen();
    UnlockProducer();
  } else {
    if (segment_->RefreshTail()) return segment_->CheckState() ? absl::OkStatus() : UnlockWithDamage();
    position = segment_->tail_snapshot();
    Unlock();
  }
  auto moved_by = [&] { return (for_space ? segment_->LoadFreePos() : segment_->LoadTail()) - position; };
  auto moved = [&] { return moved_by() != 0; };
  // Bounded spin first (a few microseconds): a busy peer usually moves the
  // position or changes the word by then, and sleeping and waking costs two
  // system calls and two context switches per message. Then sleep on the
  // futex. The position lives on the other side's busiest cache line, so it
  // is read only every kPollEvery pauses; and a producer waits for a good
  // stretch of room (kRoomWanted), not one slot: refilling a full ring one
  // slot per pop puts two cache-line transfers on every message.
  const uint64_t room_wanted = for_space ? segment_->capacity() / kRoomWanted : 1;
  bool changed = false;
  const int64_t spin_until = shm_ring_internal::MonotonicNanos() + kSpinNanos;
  for (int i = 1; !changed; ++i) {
    shm_ring_internal::CpuRelax();
    changed = seq.load(std::memory_order_acquire) != seen || (i % kPollEvery == 0 && moved_by() >= room_wanted);
    if (i % 64 == 0 && shm_ring_internal::MonotonicNanos() >= spin_until) {
      changed = changed || moved();
      break;
    }
  }
  if (!changed) {
    // seq_cst pairs with Wake and WakeMoved: either they see the flag, or
    // the position re-read here or FutexWait sees their change.
    sleeping.store(1, std::memory_order_seq_cst);
    shm_ring_internal::FullFence();
    const absl::Duration left = std::min(deadline - absl::Now(), kLivenessInterval);
    if (!moved() && left > absl::ZeroDuration()) {
      shm_ring_internal::FutexWait(&seq, seen, absl::ToInt64Nanoseconds(left));
    }
  }
  if (for_space) {
    MOERL_RETURN_IF_ERROR(LockProducer());
    if (SweepDue()) return FreeRoomLocked().status();
    return absl::OkStatus();
  }
  MOERL_RETURN_IF_ERROR(Lock());
  if (SweepDue() && segment_->SweepDead(pid_, producer_locked_) > 0) {
    Wake(true);
    Wake(false);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ShmRing::FreeRoomLocked() {
  absl::Status locked = Lock();
  if (!locked.ok()) {
    UnlockProducer();
    return locked;
  }
  const bool swept = SweepDue() && segment_->SweepDead(pid_, /*holds_producer_mutex=*/true) > 0;
  const bool moved = segment_->AdvanceFree();
  if (!segment_->damage().ok()) {
    Unlock();
    return UnlockProducerWithDamage();
  }
  Unlock();
  if (swept) Wake(/*space=*/false);
  if (swept || moved) Wake(/*space=*/true);
  return swept || moved;
}

absl::Status ShmRing::Push(absl::string_view payload, absl::Duration timeout) {
  return PushImpl(payload, timeout);
}

absl::Status ShmRing::TryPush(absl::string_view payload) { return PushImpl(payload, absl::ZeroDuration()); }

absl::Status ShmRing::CheckPush(size_t bytes) const {
  if (!RingRoleProduces(role_)) {
    return absl::FailedPreconditionError(absl::StrCat("Push on ring ", name_, ": this participant is not a producer"));
  }
  if (producer_closed_) {
    return absl::FailedPreconditionError(absl::StrCat("Push on ring ", name_, " after CloseProducer"));
  }
  if (reserved_pos_ != ~0ull) {
    return absl::FailedPreconditionError(
        absl::StrCat("Push on ring ", name_, " while a ReservePush is not committed"));
  }
  if (bytes > segment_->largest_payload()) {
    return absl::InvalidArgumentError(absl::StrCat("message of ", bytes, " bytes does not fit ring ", name_,
                                                   " (largest: ", segment_->largest_payload(), " bytes)"));
  }
  return absl::OkStatus();
}

absl::Status ShmRing::WaitForSpaceLocked(absl::Duration timeout, absl::Time* deadline) {
  if (!segment_->damage().ok()) return UnlockProducerWithDamage();
  // Consumers may have freed room since free_pos was last read.
  if (segment_->RefreshFreePos()) return segment_->damage().ok() ? absl::OkStatus() : UnlockProducerWithDamage();
  // free_pos may stop short of padding or of slots freed out of order
  // (consumers pass them lazily): move it on, once for each place it stops
  // at; and a dead consumer may be what keeps the ring full.
  if (segment_->free_pos_seen() != free_room_checked_at_ || SweepDue()) {
    free_room_checked_at_ = segment_->free_pos_seen();
    MOERL_ASSIGN_OR_RETURN(const bool freed, FreeRoomLocked());
    if (freed) return absl::OkStatus();
  }
  if (timeout == absl::ZeroDuration()) {
    UnlockProducer();
    return absl::ResourceExhaustedError(absl::StrCat("ring ", name_, " is full"));
  }
  if (absl::Now() >= DeadlineOf(timeout, deadline)) {
    UnlockProducer();
    return absl::DeadlineExceededError(
        absl::StrCat("ring ", name_, " still full after ", absl::FormatDuration(timeout)));
  }
  return WaitLocked(/*for_space=*/true, *deadline);
}

absl::StatusOr<uint64_t> ShmRing::ReserveLocked(size_t bytes, absl::Duration timeout, absl::Time* deadline) {
  MOERL_RETURN_IF_ERROR(LockProducer());
  while (true) {
    const uint64_t tail = segment_->header()->producer.tail;
    std::optional<uint64_t> pos = segment_->Reserve(static_cast<uint32_t>(bytes), self_);
    if (pos) return *pos;
    if (!segment_->damage().ok()) return UnlockProducerWithDamage();
    if (segment_->header()->producer.tail != tail) {
      // Only a pad went in: free_pos passes it now if nothing older is
      // live (otherwise WaitForSpaceLocked tries again each time free_pos
      // moves, and a consumer that passes it wakes this producer).
      MOERL_ASSIGN_OR_RETURN(const bool freed, FreeRoomLocked());
      if (freed) continue;
    }
    MOERL_RETURN_IF_ERROR(WaitForSpaceLocked(timeout, deadline));
  }
}

absl::Status ShmRing::PushImpl(absl::string_view payload, absl::Duration timeout) {
  MOERL_RETURN_IF_ERROR(CheckPush(payload.size()));
  absl::Time deadline = absl::InfinitePast();
  // A small message (that fits twice, so that waiting always ends) is
  // written complete past `tail`, copied under the lock, and published with
  // one journal entry, as PushBatch does: one Apply instead of two.
  if (payload.size() <= kInlineCopyBytes && 2 * (payload.size() + shm_ring_internal::kSlotHeaderBytes) <=
                                                segment_->capacity()) {
    MOERL_RETURN_IF_ERROR(LockProducer());
    const bool checksum = segment_->header()->checksum_payloads != 0;
    while (segment_->AppendCommitted(absl::MakeConstSpan(&payload, 1), checksum) != 1) {
      MOERL_RETURN_IF_ERROR(WaitForSpaceLocked(timeout, &deadline));
    }
    UnlockProducer();
    WakeMoved(/*space=*/false);
    return absl::OkStatus();
  }
  MOERL_ASSIGN_OR_RETURN(const uint64_t pos, ReserveLocked(payload.size(), timeout, &deadline));
  return FinishPush(pos, payload);
}

absl::Status ShmRing::FinishPush(uint64_t pos, absl::string_view payload) {
  segment_->MaybeCrash(shm_ring_internal::CrashPoint::kSlotReserved);
  UnlockProducer();
  uint64_t checksum = 0;
  if (segment_->header()->checksum_payloads) {
    checksum = RingChecksumCopy(segment_->PayloadAt(pos), payload.data(), payload.size());
  } else {
    std::memcpy(segment_->PayloadAt(pos), payload.data(), payload.size());
  }
  MOERL_RETURN_IF_ERROR(Lock());
  segment_->MaybeCrash(shm_ring_internal::CrashPoint::kPayloadWritten);
  if (!segment_->Commit(pos, checksum)) return UnlockWithDamage();
  Unlock();
  Wake(/*space=*/false);
  return absl::OkStatus();
}

absl::Status ShmRing::CloseProducer() {
  if (!RingRoleProduces(role_)) {
    return absl::FailedPreconditionError(absl::StrCat("CloseProducer on ring ", name_, ": not a producer"));
  }
  if (producer_closed_) return absl::OkStatus();
  if (reserved_pos_ != ~0ull) MOERL_RETURN_IF_ERROR(AbortPush());
  MOERL_RETURN_IF_ERROR(Lock());
  segment_->MarkProducerClosed(self_);
  Unlock();
  producer_closed_ = true;
  Wake(/*space=*/false);
  return absl::OkStatus();
}

absl::StatusOr<RingMessage> ShmRing::Pop(absl::Duration timeout) {
  RingMessage message;
  MOERL_RETURN_IF_ERROR(PopInto(&message, timeout));
  return message;
}

absl::StatusOr<RingMessage> ShmRing::TryPop() { return Pop(absl::ZeroDuration()); }

absl::Status ShmRing::CheckPop() const {
  if (!RingRoleConsumes(role_)) {
    return absl::FailedPreconditionError(absl::StrCat("Pop on ring ", name_, ": this participant is not a consumer"));
  }
  return absl::OkStatus();
}

void ShmRing::SweepNowAndThenLocked() {
  // Busy consumers never wait; look for dead ones now and then anyway, so
  // that what they held is redelivered.
  if (++pops_since_sweep_check_ >= 1024) {
    pops_since_sweep_check_ = 0;
    if (SweepDue() && segment_->SweepDead(pid_, producer_locked_) > 0) {
      Wake(/*space=*/true);
      Wake(/*space=*/false);
    }
  }
}

absl::StatusOr<uint64_t> ShmRing::TakeLocked(absl::Duration timeout, RingMessage* front,
                                             size_t front_max, size_t* front_taken) {
  absl::Time deadline = absl::InfinitePast();
  MOERL_RETURN_IF_ERROR(Lock());
  SweepNowAndThenLocked();
  // ConsumeFront may move free_pos past padding without taking anything: a
  // producer waiting for that room must hear of it before this waits.
  const uint64_t free_before = segment_->header()->state.free_pos;
  auto tell_producers = [&] {
    if (segment_->header()->state.free_pos != free_before) WakeMoved(/*space=*/true);
  };
  for (bool swept = false;;) {
    if (front != nullptr) {
      *front_taken = segment_->ConsumeFront(front, front_max, kInlineCopyBytes,
                                            segment_->header()->checksum_payloads != 0);
      if (*front_taken > 0) return uint64_t{0};
    }
    std::optional<uint64_t> pos = segment_->Take(self_);
    if (pos) return *pos;
    if (!segment_->damage().ok()) return UnlockWithDamage();
    if (segment_->RefreshTail()) {
      if (!segment_->CheckState()) return UnlockWithDamage();
      continue;
    }
    tell_producers();
    if (segment_->EndOfStream()) {
      Unlock();
      return absl::OutOfRangeError(absl::StrCat("ring ", name_, ": end of stream, every producer closed"));
    }
    if (timeout == absl::ZeroDuration()) {
      // A dead consumer may hold a message that is due again.
      if (!swept && SweepDue() && segment_->SweepDead(pid_, producer_locked_) > 0) {
        swept = true;
        continue;
      }
      Unlock();
      return absl::UnavailableError(absl::StrCat("ring ", name_, " is empty"));
    }
    if (absl::Now() >= DeadlineOf(timeout, &deadline)) {
      Unlock();
      return absl::DeadlineExceededError(
          absl::StrCat("no message on ring ", name_, " after ", absl::FormatDuration(timeout)));
    }
    MOERL_RETURN_IF_ERROR(WaitLocked(/*for_space=*/false, deadline));
  }
}

absl::Status ShmRing::PopInto(RingMessage* message, absl::Duration timeout) {
  MOERL_RETURN_IF_ERROR(CheckPop());
  if (!pending_data_loss_.ok()) return std::exchange(pending_data_loss_, absl::OkStatus());
  if (segment_->mode() != DeliveryMode::kPlain) {
    MOERL_ASSIGN_OR_RETURN(const uint64_t pos, TakeLocked(timeout));
    return FinishPop(pos, message);
  }
  // Plain mode: a small message at the front is copied out under the lock
  // and freed with one journal entry (RingSegment::ConsumeFront, as PopBatch
  // does): one Apply instead of two, straight into the caller's message.
  size_t taken = 0;
  absl::StatusOr<uint64_t> pos = TakeLocked(timeout, message, 1, &taken);
  if (!pos.ok()) return pos.status();
  if (taken == 0) return FinishPop(*pos, message);
  if (!segment_->damage().ok()) return UnlockWithDamage();
  UnlockAfterFreeing();
  return absl::OkStatus();
}

absl::Status ShmRing::FinishPop(uint64_t pos, RingMessage* message) {
  segment_->MaybeCrash(shm_ring_internal::CrashPoint::kSlotTaken);
  SlotHeader slot;
  if (!segment_->ReadSlot(pos, &slot)) return UnlockWithDamage();
  const bool inline_copy = slot.payload_bytes <= kInlineCopyBytes;
  if (!inline_copy) Unlock();
  message->payload.resize(slot.payload_bytes);
  bool checksum_ok = true;
  if (segment_->header()->checksum_payloads) {
    checksum_ok =
        RingChecksumCopy(&message->payload[0], segment_->PayloadAt(pos), slot.payload_bytes) == slot.checksum;
  } else {
    std::memcpy(&message->payload[0], segment_->PayloadAt(pos), slot.payload_bytes);
  }
  message->delivery_count = slot.delivery_count;
  message->ticket = 0;
  segment_->MaybeCrash(shm_ring_internal::CrashPoint::kPayloadCopiedOut);
  const bool plain = segment_->mode() == DeliveryMode::kPlain;
  if (plain) {
    if (!inline_copy) MOERL_RETURN_IF_ERROR(Lock());
    segment_->Release(pos, /*acked=*/false);
    UnlockAfterFreeing();
  } else if (!checksum_ok) {
    // Never hand out, nor redeliver forever, a message that fails its check.
    if (!inline_copy) MOERL_RETURN_IF_ERROR(Lock());
    segment_->Release(pos, /*acked=*/false);
    Unlock();
    Wake(/*space=*/true);
  } else {
    if (inline_copy) Unlock();
    message->ticket = pos + 1;
  }
  if (!checksum_ok) {
    return absl::DataLossError(absl::StrCat("ring ", name_, ": message at position ", pos, " of ",
                                            slot.payload_bytes, " bytes fails its checksum"));
  }
  return absl::OkStatus();
}

absl::Status ShmRing::Ack(uint64_t ticket) {
  if (segment_->mode() == DeliveryMode::kPlain) return absl::OkStatus();
  if (!RingRoleConsumes(role_)) {
    return absl::FailedPreconditionError(absl::StrCat("Ack on ring ", name_, ": not a consumer"));
  }
  MOERL_RETURN_IF_ERROR(Lock());
  if (ticket == 0 || !segment_->Holds(ticket - 1, self_)) {
    Unlock();
    return absl::NotFoundError(absl::StrCat("ring ", name_, ": ticket ", ticket, " is not held by this consumer"));
  }
  segment_->Release(ticket - 1, /*acked=*/true);
  if (!segment_->damage().ok()) return UnlockWithDamage();
  UnlockAfterFreeing();
  return absl::OkStatus();
}

DeliveryMode ShmRing::delivery_mode() const { return segment_->mode(); }

RingStats ShmRing::Stats() const {
  if (!Lock().ok()) return RingStats();
  RingStats stats = segment_->Stats();
  Unlock();
  return stats;
}

absl::StatusOr<std::vector<RingMessage>> ShmRing::Peek(size_t max) const {
  MOERL_RETURN_IF_ERROR(Lock());
  std::vector<RingMessage> out = segment_->Peek(max);
  if (!segment_->damage().ok()) return UnlockWithDamage();
  Unlock();
  return out;
}

bool ShmRing::Stale() const {
  const SegmentHeader* h = segment_->header();
  // An owner in another PID namespace cannot be checked: not stale.
  if (h->owner_pid_namespace != segment_->pid_namespace()) return false;
  if (shm_ring_internal::ProcessAlive(h->owner_pid, h->owner_start_time)) return false;
  if (!Lock().ok()) return true;
  const bool alive = segment_->AnyParticipantAlive();
  Unlock();
  return !alive;
}

pid_t ShmRing::owner_pid() const { return segment_->header()->owner_pid; }

}  // namespace moerl
