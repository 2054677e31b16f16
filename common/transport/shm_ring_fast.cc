// ShmRing fast paths: zero-copy views (PopView / ReservePush) and batches
// (PushBatch / PopBatch). Same protocol as shm_ring.cc, on the same
// journaled RingSegment operations: every slot change is still one journal
// entry, so the crash contract holds per message.
#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/transport/ring_checksum.h"
#include "common/transport/shm_ring.h"
#include "common/transport/shm_ring_segment.h"

namespace moerl {
using shm_ring_internal::CrashPoint;
using shm_ring_internal::SlotHeader;

namespace {

constexpr uint64_t kNoReservation = ~0ull;
// Messages per lock acquisition in a batch: bounds how long one batch keeps
// the other side waiting for the mutex.
constexpr size_t kMaxBatch = 256;

}  // namespace

absl::Status ShmRing::PopView(MessageView* view, absl::Duration timeout) {
  MOERL_RETURN_IF_ERROR(CheckPop());
  if (!pending_data_loss_.ok()) return std::exchange(pending_data_loss_, absl::OkStatus());
  MOERL_ASSIGN_OR_RETURN(const uint64_t pos, TakeLocked(timeout));
  segment_->MaybeCrash(CrashPoint::kSlotTaken);
  SlotHeader slot;
  if (!segment_->ReadSlot(pos, &slot)) return UnlockWithDamage();
  Unlock();
  // The slot is ours (kTaken) until released: read it without the lock.
  const char* data = segment_->PayloadAt(pos);
  if (segment_->header()->checksum_payloads && RingChecksum(data, slot.payload_bytes) != slot.checksum) {
    // Never hand out, nor redeliver forever, a message that fails its check.
    MOERL_RETURN_IF_ERROR(Lock());
    segment_->Release(pos, /*acked=*/false);
    Unlock();
    Wake(/*space=*/true);
    return absl::DataLossError(absl::StrCat("ring ", name_, ": message at position ", pos, " of ",
                                            slot.payload_bytes, " bytes fails its checksum"));
  }
  view->payload = absl::string_view(data, slot.payload_bytes);
  view->delivery_count = slot.delivery_count;
  view->ticket = pos + 1;
  return absl::OkStatus();
}

absl::Status ShmRing::ReleaseView(const MessageView& view) {
  MOERL_RETURN_IF_ERROR(CheckPop());
  if (segment_->mode() == DeliveryMode::kAcknowledged) return Ack(view.ticket);
  MOERL_RETURN_IF_ERROR(Lock());
  if (view.ticket == 0 || !segment_->Holds(view.ticket - 1, self_)) {
    Unlock();
    return absl::NotFoundError(
        absl::StrCat("ring ", name_, ": view with ticket ", view.ticket, " is not held by this consumer"));
  }
  segment_->Release(view.ticket - 1, /*acked=*/false);
  if (!segment_->damage().ok()) return UnlockWithDamage();
  UnlockAfterFreeing();
  return absl::OkStatus();
}

absl::StatusOr<char*> ShmRing::ReservePush(size_t bytes, absl::Duration timeout) {
  MOERL_RETURN_IF_ERROR(CheckPush(bytes));
  absl::Time deadline = absl::InfinitePast();
  MOERL_ASSIGN_OR_RETURN(const uint64_t pos, ReserveLocked(bytes, timeout, &deadline));
  segment_->MaybeCrash(CrashPoint::kSlotReserved);
  UnlockProducer();
  reserved_pos_ = pos;
  reserved_bytes_ = bytes;
  return segment_->PayloadAt(pos);
}

absl::Status ShmRing::CommitPush() {
  if (reserved_pos_ == kNoReservation) {
    return absl::FailedPreconditionError(absl::StrCat("CommitPush on ring ", name_, " without ReservePush"));
  }
  const uint64_t pos = std::exchange(reserved_pos_, kNoReservation);
  // Our own reservation: its size is what we asked for (not re-read from
  // shared memory, where a stray write could have changed it).
  const size_t bytes = reserved_bytes_;
  const uint64_t checksum =
      segment_->header()->checksum_payloads ? RingChecksum(segment_->PayloadAt(pos), bytes) : 0;
  MOERL_RETURN_IF_ERROR(Lock());
  segment_->MaybeCrash(CrashPoint::kPayloadWritten);
  if (!segment_->Commit(pos, checksum)) return UnlockWithDamage();
  Unlock();
  Wake(/*space=*/false);
  return absl::OkStatus();
}

absl::Status ShmRing::AbortPush() {
  if (reserved_pos_ == kNoReservation) {
    return absl::FailedPreconditionError(absl::StrCat("AbortPush on ring ", name_, " without ReservePush"));
  }
  const uint64_t pos = std::exchange(reserved_pos_, kNoReservation);
  MOERL_RETURN_IF_ERROR(Lock());
  if (!segment_->Abandon(pos)) return UnlockWithDamage();
  Unlock();
  Wake(/*space=*/true);
  return absl::OkStatus();
}

absl::Status ShmRing::PushBatch(absl::Span<const absl::string_view> payloads, absl::Duration timeout,
                                size_t* pushed) {
  size_t done = 0;
  if (pushed != nullptr) *pushed = 0;
  for (absl::string_view payload : payloads) MOERL_RETURN_IF_ERROR(CheckPush(payload.size()));
  const bool checksum = segment_->header()->checksum_payloads != 0;
  absl::Time deadline = absl::InfinitePast();  // one deadline for the whole batch
  absl::Status status;
  while (done < payloads.size() && status.ok()) {
    // Small messages: as many as fit, published together.
    size_t run = 0;
    while (done + run < payloads.size() && run < kMaxBatch && payloads[done + run].size() <= kInlineCopyBytes) {
      ++run;
    }
    if (run > 0) {
      status = LockProducer();
      if (!status.ok()) break;
      const size_t appended = segment_->AppendCommitted(payloads.subspan(done, run), checksum);
      if (!segment_->damage().ok()) {
        status = UnlockProducerWithDamage();
        break;
      }
      UnlockProducer();
      if (appended > 0) {
        done += appended;
        WakeMoved(/*space=*/false);
        continue;
      }
    }
    // A large message, or no room: one message the ordinary way (it waits
    // for space, and copies a large payload outside the lock).
    absl::StatusOr<uint64_t> pos = ReserveLocked(payloads[done].size(), timeout, &deadline);
    status = pos.ok() ? FinishPush(*pos, payloads[done]) : pos.status();
    if (status.ok()) ++done;
  }
  if (pushed != nullptr) *pushed = done;
  return status;
}

absl::StatusOr<size_t> ShmRing::PopBatch(std::vector<RingMessage>* messages, size_t max,
                                         absl::Duration timeout) {
  MOERL_RETURN_IF_ERROR(CheckPop());
  if (max == 0) return absl::InvalidArgumentError(absl::StrCat("PopBatch on ring ", name_, " with max 0"));
  if (!pending_data_loss_.ok()) return std::exchange(pending_data_loss_, absl::OkStatus());
  const bool plain = segment_->mode() == DeliveryMode::kPlain;
  const bool checksum = segment_->header()->checksum_payloads != 0;
  // Room for a whole front batch (payload buffers are kept, and reused).
  if (messages->size() < (plain ? std::min(max, kMaxBatch) : size_t{1})) {
    messages->resize(plain ? std::min(max, kMaxBatch) : size_t{1});
  }
  // Plain mode, the common case: the oldest messages, freed together (one
  // journal entry), tried first and again after every wait.
  size_t front_taken = 0;
  MOERL_ASSIGN_OR_RETURN(uint64_t pos, TakeLocked(timeout, plain ? messages->data() : nullptr,
                                                  std::min(max, kMaxBatch), &front_taken));
  if (front_taken > 0) {
    if (!segment_->damage().ok()) return UnlockWithDamage();
    UnlockAfterFreeing();
    return front_taken;
  }
  SlotHeader first;
  if (!segment_->ReadSlot(pos, &first)) return UnlockWithDamage();
  if (first.payload_bytes > kInlineCopyBytes) {
    // A large message is copied outside the lock, alone.
    MOERL_RETURN_IF_ERROR(FinishPop(pos, &(*messages)[0]));
    return size_t{1};
  }
  size_t n = 0;
  absl::Status data_loss;
  while (true) {
    if (messages->size() <= n) messages->emplace_back();
    RingMessage& m = (*messages)[n];
    segment_->MaybeCrash(CrashPoint::kSlotTaken);
    SlotHeader slot;
    if (!segment_->ReadSlot(pos, &slot)) return UnlockWithDamage();
    m.payload.resize(slot.payload_bytes);
    bool checksum_ok = true;
    if (checksum) {
      checksum_ok =
          RingChecksumCopy(&m.payload[0], segment_->PayloadAt(pos), slot.payload_bytes) == slot.checksum;
    } else {
      std::memcpy(&m.payload[0], segment_->PayloadAt(pos), slot.payload_bytes);
    }
    m.delivery_count = slot.delivery_count;
    m.ticket = plain ? 0 : pos + 1;
    segment_->MaybeCrash(CrashPoint::kPayloadCopiedOut);
    // Plain mode: delivered now. A message failing its check is dropped in
    // both modes (never handed out, never redelivered forever).
    if (plain || !checksum_ok) segment_->Release(pos, /*acked=*/false);
    if (!checksum_ok) {
      data_loss = absl::DataLossError(absl::StrCat("ring ", name_, ": message at position ", pos, " of ",
                                                   slot.payload_bytes, " bytes fails its checksum"));
      break;
    }
    ++n;
    if (n >= max || n >= kMaxBatch) break;
    const std::optional<uint64_t> next = segment_->Take(self_);
    if (!next) {
      if (!segment_->damage().ok()) return UnlockWithDamage();
      break;
    }
    pos = *next;
  }
  UnlockAfterFreeing();
  if (!data_loss.ok()) {
    if (n == 0) return data_loss;
    pending_data_loss_ = std::move(data_loss);
  }
  return n;
}

}  // namespace moerl
