// Slot and participant bookkeeping of a ShmRing segment; see
// shm_ring_segment.h for the states and the journal.
#include "common/transport/shm_ring_segment.h"

#include <errno.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

#include "common/logging.h"
#include "common/transport/ring_checksum.h"
#include "common/transport/shm_ring_sync.h"

namespace moerl {
namespace shm_ring_internal {
namespace {

// Fields that one side writes under its lock and the other reads without it.
uint64_t LoadAcquire(const uint64_t* field) { return __atomic_load_n(field, __ATOMIC_ACQUIRE); }
void StoreRelease(uint64_t* field, uint64_t value) { __atomic_store_n(field, value, __ATOMIC_RELEASE); }

}  // namespace

bool RingSegment::RefreshTail() const {
  const uint64_t tail = LoadAcquire(&h_->producer.tail);
  if (tail == tail_) return false;
  if (tail < tail_) {
    // Positions only grow: a stray write put tail back over live messages.
    Damaged("producer state", "tail", tail, offsetof(SegmentHeader, producer) + offsetof(ProducerState, tail),
            absl::StrCat("moved back from ", tail_, ", which this participant saw before"));
    return false;
  }
  tail_ = tail;
  return true;
}

void RingSegment::Apply(const State& state, const SlotHeader* slot, uint64_t slot_position,
                        const Participant* participant, uint32_t participant_index) {
  Journal& j = h_->journal;
  j.state = state;
  j.slot_position = slot != nullptr ? slot_position : kNoSlot;
  if (slot != nullptr) j.slot = *slot;
  j.participant_index = participant != nullptr ? participant_index : kNoOwner;
  if (participant != nullptr) j.participant = *participant;
  MarkValid(&j.valid);
  RecoverJournal();
}

void RingSegment::MarkValid(std::atomic<uint32_t>* valid) const {
  // Crash ordering is about one thread being stopped at an instruction:
  // x86 makes stores visible in program order, so only the compiler must be
  // kept from reordering (a signal fence, not a CPU fence).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  valid->store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  MaybeCrash(CrashPoint::kJournalValid);
}

void RingSegment::RecoverJournal() {
  Journal& j = h_->journal;
  if (j.valid.load(std::memory_order_relaxed) == 0) return;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  RefreshTail();
  // The slot first, and only while it is live: once free_pos is past it (a
  // replay of a journal whose State was already applied), producers may have
  // written a new slot over it.
  if (j.slot_position != kNoSlot) {
    if (j.slot_position % kSlotAlign != 0) {
      Damaged("journal", "slot_position", j.slot_position,
              offsetof(SegmentHeader, journal) + offsetof(Journal, slot_position), "not a slot boundary");
    } else if (j.slot_position >= h_->state.free_pos && j.slot_position < tail_) {
      *SlotAt(j.slot_position) = j.slot;
    }
  }
  if (j.participant_index < kMaxParticipants) h_->participants[j.participant_index] = j.participant;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  // State: everything but free_pos, then free_pos in one store (producers
  // load it without the lock).
  std::memcpy(reinterpret_cast<char*>(&h_->state) + sizeof(uint64_t),
              reinterpret_cast<const char*>(&j.state) + sizeof(uint64_t), sizeof(State) - sizeof(uint64_t));
  std::atomic_signal_fence(std::memory_order_seq_cst);
  MaybeCrash(CrashPoint::kJournalHalfApplied);
  StoreRelease(&h_->state.free_pos, j.state.free_pos);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  j.valid.store(0, std::memory_order_relaxed);
}

void RingSegment::ApplyProducer(const ProducerState& state) {
  ProducerJournal& j = h_->producer_journal;
  j.state = state;
  MarkValid(&j.valid);
  RecoverProducerJournal();
}

bool RingSegment::RecoverProducerJournal() {
  ProducerJournal& j = h_->producer_journal;
  if (j.valid.load(std::memory_order_relaxed) == 0) return false;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  // The counters before `tail`: a reader that sees the new tail sees them.
  __atomic_store_n(&h_->producer.pushed, j.state.pushed, __ATOMIC_RELAXED);
  __atomic_store_n(&h_->producer.pushed_bytes, j.state.pushed_bytes, __ATOMIC_RELAXED);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  MaybeCrash(CrashPoint::kJournalHalfApplied);
  StoreRelease(&h_->producer.tail, j.state.tail);
  if (j.state.tail > tail_) tail_ = j.state.tail;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  j.valid.store(0, std::memory_order_relaxed);
  return true;
}

bool RingSegment::TryRecoverProducerSide() {
  int rc = pthread_mutex_trylock(&h_->producer_mutex);
  if (rc == EOWNERDEAD) {
    pthread_mutex_consistent(&h_->producer_mutex);
    RecoverProducerJournal();
    rc = 0;
  }
  if (rc != 0) return false;
  RefreshTail();
  return true;
}

std::optional<uint32_t> RingSegment::Register(RingRole role, pid_t pid, uint64_t start_time) {
  for (uint32_t i = 0; i < kMaxParticipants; ++i) {
    if (h_->participants[i].in_use) continue;
    Participant p{};
    p.in_use = 1;
    p.role = static_cast<uint32_t>(role);
    p.pid = pid;
    p.start_time = start_time;
    p.pid_namespace = pid_namespace_;
    State s = h_->state;
    if (RingRoleProduces(role)) ++s.producers_registered;
    if (RingRoleConsumes(role)) ++s.consumers;
    Apply(s, nullptr, 0, &p, i);
    return i;
  }
  return std::nullopt;
}

void RingSegment::MarkProducerClosed(uint32_t index) {
  Participant p = h_->participants[index];
  if (p.producer_closed) return;
  p.producer_closed = 1;
  State s = h_->state;
  ++s.producers_closed;
  Apply(s, nullptr, 0, &p, index);
}

void RingSegment::Deregister(uint32_t index) {
  // Give back slots first: each step is journaled on its own and leaves a
  // consistent ring, so a crash here is finished by the next sweep.
  RefreshTail();
  for (uint64_t pos = h_->state.free_pos; pos < tail_;) {
    SlotHeader slot;
    if (!ReadSlot(pos, &slot)) break;
    if (slot.owner == index && slot.state == kTaken) {
      Requeue(pos);
    } else if (slot.owner == index && slot.state == kReserved) {
      SlotHeader abandoned = slot;
      abandoned.state = kAbandoned;
      Apply(h_->state, &abandoned, pos, nullptr, 0);
    }
    pos += slot.total_bytes;
  }
  const Participant old = h_->participants[index];
  if (!old.in_use) return;
  const RingRole role = static_cast<RingRole>(old.role);
  State s = h_->state;
  if (RingRoleProduces(role) && !old.producer_closed) ++s.producers_died;
  if (RingRoleConsumes(role)) --s.consumers;
  Participant freed{};
  Apply(s, nullptr, 0, &freed, index);
  AdvanceFree();
  AdvanceClaim();
}

int RingSegment::SweepDead(pid_t self_pid, bool holds_producer_mutex) {
  int dead = 0;
  bool tried = false, locked_here = false;
  for (uint32_t i = 0; i < kMaxParticipants; ++i) {
    const Participant& p = h_->participants[i];
    if (!p.in_use || p.pid == self_pid) continue;
    if (p.pid_namespace != pid_namespace_) continue;
    if (ProcessAlive(p.pid, p.start_time)) continue;
    if (RingRoleProduces(static_cast<RingRole>(p.role)) && !holds_producer_mutex) {
      // Its journal may hold a reservation not yet published: replay it
      // first, or leave this producer to whoever holds producer_mutex now.
      if (!tried) {
        tried = true;
        locked_here = TryRecoverProducerSide();
      }
      if (!locked_here) continue;
    }
    Deregister(i);
    ++dead;
  }
  if (locked_here) pthread_mutex_unlock(&h_->producer_mutex);
  h_->last_sweep_ns.store(MonotonicNanos(), std::memory_order_relaxed);
  return dead;
}

bool RingSegment::AnyParticipantAlive() const {
  for (uint32_t i = 0; i < kMaxParticipants; ++i) {
    const Participant& p = h_->participants[i];
    if (!p.in_use) continue;
    if (p.pid_namespace != pid_namespace_ || ProcessAlive(p.pid, p.start_time)) return true;
  }
  return false;
}

uint64_t RingSegment::FreeBytes(uint64_t tail, uint64_t want) {
  if (free_pos_seen_ <= tail && tail - free_pos_seen_ <= capacity_ &&
      capacity_ - (tail - free_pos_seen_) >= want) {
    return capacity_ - (tail - free_pos_seen_);
  }
  return ReloadFreePos(tail);
}

uint64_t RingSegment::ReloadFreePos(uint64_t tail) {
  free_pos_seen_ = LoadAcquire(&h_->state.free_pos);
  const uint64_t offset = offsetof(SegmentHeader, state) + offsetof(State, free_pos);
  if (free_pos_seen_ % kSlotAlign != 0) {
    Damaged("state", "free_pos", free_pos_seen_, offset, "not a multiple of 64");
  } else if (free_pos_seen_ > tail) {
    Damaged("state", "free_pos", free_pos_seen_, offset, absl::StrCat("past tail ", tail));
  } else if (tail - free_pos_seen_ > capacity_) {
    Damaged("producer state", "tail", tail, offsetof(SegmentHeader, producer) + offsetof(ProducerState, tail),
            absl::StrCat("more than the capacity (", capacity_, ") past free_pos ", free_pos_seen_));
  }
  if (!damage_.ok()) return 0;
  return capacity_ - (tail - free_pos_seen_);
}

bool RingSegment::RefreshFreePos() {
  const uint64_t before = free_pos_seen_;
  ReloadFreePos(h_->producer.tail);
  return free_pos_seen_ != before;
}

bool RingSegment::CheckProducerState() {
  if (!damage_.ok()) return false;
  const uint64_t tail = h_->producer.tail;
  const uint64_t offset = offsetof(SegmentHeader, producer) + offsetof(ProducerState, tail);
  if (tail % kSlotAlign != 0) {
    Damaged("producer state", "tail", tail, offset, "not a multiple of 64");
    return false;
  }
  if (tail < tail_) {
    Damaged("producer state", "tail", tail, offset,
            absl::StrCat("moved back from ", tail_, ", which this participant saw before"));
    return false;
  }
  tail_ = tail;             // a producer's snapshot follows what it publishes
  FreeBytes(tail, 0);  // validates tail against free_pos
  return damage_.ok();
}

uint64_t RingSegment::WritePad(uint64_t tail) {
  SlotHeader pad{};
  pad.state = kPad;
  pad.owner = kNoOwner;
  pad.position = tail;
  pad.total_bytes = capacity_ - tail % capacity_;
  *SlotAt(tail) = pad;
  return tail + pad.total_bytes;
}

std::optional<uint64_t> RingSegment::Reserve(uint32_t payload_bytes, uint32_t owner) {
  const uint64_t need = AlignSlot(kSlotHeaderBytes + payload_bytes);
  MOERL_CHECK(need <= capacity_) << "caller checks the largest payload";
  ProducerState s = h_->producer;
  std::optional<uint64_t> position;
  const uint64_t to_end = capacity_ - s.tail % capacity_;
  if (to_end < need) {
    // The slot would cross the end of the area: pad to the end, then
    // reserve at offset 0. The pad is freed as soon as free_pos reaches it.
    if (FreeBytes(s.tail, to_end) < to_end) return std::nullopt;
    s.tail = WritePad(s.tail);
  }
  if (FreeBytes(s.tail, need) >= need) {
    SlotHeader slot{};
    slot.state = kReserved;
    slot.owner = owner;
    slot.position = s.tail;
    slot.total_bytes = need;
    slot.payload_bytes = payload_bytes;
    slot.delivery_count = 1;
    *SlotAt(s.tail) = slot;
    position = s.tail;
    s.tail += need;
  }
  // Written past `tail`, where nobody looks, and published in one step.
  if (s.tail != h_->producer.tail) ApplyProducer(s);
  return position;
}

bool RingSegment::ReadReservation(uint64_t position, SlotHeader* slot) const {
  if (!ReadSlot(position, slot)) return false;
  if (slot->state == kReserved) return true;
  Damaged("slot", "state", slot->state, SlotFieldOffset(position, offsetof(SlotHeader, state)),
          "the producer's reserved slot changed state under it");
  return false;
}

bool RingSegment::Commit(uint64_t position, uint64_t checksum) {
  SlotHeader slot;
  if (!ReadReservation(position, &slot)) return false;
  slot.state = kCommitted;
  slot.checksum = checksum;
  State s = h_->state;
  ++s.committed;
  s.committed_bytes += slot.payload_bytes;
  Apply(s, &slot, position, nullptr, 0);
  return true;
}

bool RingSegment::Abandon(uint64_t position) {
  SlotHeader slot;
  if (!ReadReservation(position, &slot)) return false;
  slot.state = kAbandoned;
  Apply(h_->state, &slot, position, nullptr, 0);
  AdvanceFree();
  AdvanceClaim();
  return true;
}

size_t RingSegment::AppendCommitted(absl::Span<const absl::string_view> payloads, bool checksum) {
  ProducerState s = h_->producer;
  size_t n = 0;
  while (n < payloads.size()) {
    const absl::string_view payload = payloads[n];
    const uint64_t need = AlignSlot(kSlotHeaderBytes + payload.size());
    const uint64_t to_end = capacity_ - s.tail % capacity_;
    if (to_end < need) {
      if (FreeBytes(s.tail, to_end + need) < to_end + need) break;
      s.tail = WritePad(s.tail);
      continue;
    }
    if (FreeBytes(s.tail, need) < need) break;
    SlotHeader slot{};
    slot.state = kCommitted;
    slot.owner = kNoOwner;
    slot.position = s.tail;
    slot.total_bytes = need;
    slot.payload_bytes = static_cast<uint32_t>(payload.size());
    slot.delivery_count = 1;
    if (checksum) {
      slot.checksum = RingChecksumCopy(PayloadAt(s.tail), payload.data(), payload.size());
    } else {
      std::memcpy(PayloadAt(s.tail), payload.data(), payload.size());
    }
    *SlotAt(s.tail) = slot;
    s.tail += need;
    ++s.pushed;
    s.pushed_bytes += payload.size();
    ++n;
  }
  if (n == 0) return 0;  // a pad written past `tail` is never seen
  ApplyProducer(s);
  // The next slot's lines were last read by a consumer: ask for them now.
  const uint64_t next = s.tail % capacity_;
  if (next + 2 * kSlotAlign <= capacity_) {
    __builtin_prefetch(data_ + next, 1);
    __builtin_prefetch(data_ + next + kSlotAlign, 1);
  }
  return n;
}

size_t RingSegment::ConsumeFront(RingMessage* out, size_t max, uint32_t max_bytes,
                                 bool checksum) {
  State s = h_->state;
  size_t n = 0;
  uint64_t pos = s.free_pos;
  SlotHeader slot;
  while (n < max && pos < tail_) {
    if (!ReadSlot(pos, &slot)) break;
    if (slot.state == kFree || slot.state == kPad || slot.state == kAbandoned) {
      pos += slot.total_bytes;
      continue;
    }
    if (slot.state != kCommitted || slot.payload_bytes > max_bytes) break;
    PrefetchAfter(pos + slot.total_bytes);
    RingMessage& m = out[n];
    m.payload.resize(slot.payload_bytes);
    if (checksum) {
      if (RingChecksumCopy(&m.payload[0], PayloadAt(pos), slot.payload_bytes) != slot.checksum) break;
    } else {
      std::memcpy(&m.payload[0], PayloadAt(pos), slot.payload_bytes);
    }
    m.delivery_count = slot.delivery_count;
    m.ticket = 0;
    if (pos < s.claim_pos) --s.requeued;  // committed below claim_pos: a requeued one
    ++s.popped;
    s.popped_bytes += slot.payload_bytes;
    pos += slot.total_bytes;
    ++n;
  }
  if (n == 0) {
    // Nothing to take, but padding and abandoned slots at the front can
    // still be freed (a producer waiting for room needs it).
    if (pos != s.free_pos) AdvanceFree();
    return 0;
  }
  // free_pos stops right after what was taken. The next header is not read
  // here: it may sit in the producer's cache, and this is the lock's
  // critical section (the next call skips any padding there, and a
  // producer short of room moves free_pos past it: AdvanceFree).
  s.free_pos = pos;
  if (s.claim_pos < s.free_pos) s.claim_pos = s.free_pos;
  Apply(s, nullptr, 0, nullptr, 0);
  return n;
}

std::optional<uint64_t> RingSegment::Take(uint32_t owner) {
  const State& cur = h_->state;
  uint64_t pos = cur.requeued > 0 ? cur.free_pos : cur.claim_pos;
  SlotHeader slot;
  while (pos < tail_) {
    if (!ReadSlot(pos, &slot)) return std::nullopt;
    if (slot.state == kCommitted) break;
    pos += slot.total_bytes;
  }
  if (pos >= tail_) return std::nullopt;
  slot.state = kTaken;
  slot.owner = owner;
  State s = cur;
  if (pos < cur.claim_pos) --s.requeued;
  ++s.in_flight;
  ++s.popped;
  s.popped_bytes += slot.payload_bytes;
  // Move claim_pos past what is no longer takeable, counting this slot as taken.
  SlotHeader other;
  while (s.claim_pos < tail_ && ReadSlot(s.claim_pos, &other)) {
    const uint32_t state = s.claim_pos == pos ? kTaken : other.state;
    if (state == kCommitted || state == kReserved) break;
    s.claim_pos += other.total_bytes;
  }
  Apply(s, &slot, pos, nullptr, 0);
  return pos;
}

void RingSegment::Requeue(uint64_t position) {
  SlotHeader slot;
  if (!ReadSlot(position, &slot)) return;
  slot.state = kCommitted;
  slot.owner = kNoOwner;
  ++slot.delivery_count;
  State s = h_->state;
  --s.in_flight;
  ++s.redelivered;
  s.redelivered_bytes += slot.payload_bytes;
  if (position < s.claim_pos) ++s.requeued;
  Apply(s, &slot, position, nullptr, 0);
}

void RingSegment::Release(uint64_t position, bool acked) {
  RefreshTail();  // free_pos may move past slots published since the last look
  SlotHeader slot;
  if (!ReadSlot(position, &slot)) return;
  slot.state = kFree;
  State s = h_->state;
  --s.in_flight;
  if (acked) ++s.acked;
  // Move free_pos past freed slots, counting this one as free.
  SlotHeader other;
  while (s.free_pos < tail_ && ReadSlot(s.free_pos, &other)) {
    const uint32_t state = s.free_pos == position ? kFree : other.state;
    if (state != kFree && state != kPad && state != kAbandoned) break;
    s.free_pos += other.total_bytes;
  }
  if (s.claim_pos < s.free_pos) s.claim_pos = s.free_pos;
  Apply(s, &slot, position, nullptr, 0);
}

bool RingSegment::Holds(uint64_t position, uint32_t owner) const {
  const State& s = h_->state;
  if (position < s.free_pos || position >= tail_ || position % kSlotAlign != 0) return false;
  const SlotHeader* slot = SlotAt(position);
  return slot->position == position && slot->state == kTaken && slot->owner == owner;
}

bool RingSegment::AdvanceFree() {
  // A pad a producer published alone lies past any older snapshot.
  RefreshTail();
  State s = h_->state;
  SlotHeader slot;
  while (s.free_pos < tail_ && ReadSlot(s.free_pos, &slot)) {
    if (slot.state != kFree && slot.state != kPad && slot.state != kAbandoned) break;
    s.free_pos += slot.total_bytes;
  }
  if (s.claim_pos < s.free_pos) s.claim_pos = s.free_pos;
  if (s.free_pos == h_->state.free_pos) return false;
  Apply(s, nullptr, 0, nullptr, 0);
  return true;
}

void RingSegment::AdvanceClaim() {
  State s = h_->state;
  SlotHeader slot;
  while (s.claim_pos < tail_ && ReadSlot(s.claim_pos, &slot)) {
    if (slot.state == kCommitted || slot.state == kReserved) break;
    s.claim_pos += slot.total_bytes;
  }
  if (s.claim_pos != h_->state.claim_pos) Apply(s, nullptr, 0, nullptr, 0);
}

RingCounters RingSegment::Counters() const {
  const State& s = h_->state;
  // Stored before `tail` and loaded after `mutex` was taken: they count at
  // least every message below any tail a consumer took from, so depth
  // never goes below what was taken.
  const uint64_t pushed = LoadAcquire(&h_->producer.pushed) + s.committed;
  const uint64_t pushed_bytes = LoadAcquire(&h_->producer.pushed_bytes) + s.committed_bytes;
  RingCounters r;
  r.depth_messages = pushed + s.redelivered - s.popped;
  r.depth_bytes = pushed_bytes + s.redelivered_bytes - s.popped_bytes;
  r.in_flight = s.in_flight;
  r.pushed = pushed;
  r.popped = s.popped;
  r.acked = s.acked;
  r.redelivered = s.redelivered;
  r.producers_registered = s.producers_registered;
  r.producers_closed = s.producers_closed;
  r.producers_died = s.producers_died;
  r.consumers = s.consumers;
  r.expected_producers = h_->expected_producers;
  return r;
}

bool RingSegment::EndOfStream() const {
  // The participant counts first: Counters() reads the producers' cache line.
  const State& s = h_->state;
  if (s.producers_closed + s.producers_died != s.producers_registered || s.in_flight != 0) return false;
  return Counters().EndOfStream();
}

RingStats RingSegment::Stats() const { return Counters().ToStats(capacity_, largest_payload()); }

std::vector<RingMessage> RingSegment::Peek(size_t max) {
  RefreshTail();
  std::vector<RingMessage> out;
  const State& s = h_->state;
  SlotHeader slot;
  for (uint64_t pos = s.free_pos; pos < tail_ && out.size() < max && ReadSlot(pos, &slot);) {
    if (slot.state == kCommitted) {
      RingMessage m;
      m.payload.assign(PayloadAt(pos), slot.payload_bytes);
      m.delivery_count = slot.delivery_count;
      m.ticket = pos + 1;
      out.push_back(std::move(m));
    }
    pos += slot.total_bytes;
  }
  return out;
}

void RingSegment::PrefetchAfter(uint64_t pos) const {
  // Lines below `tail` are complete: the producer writes them no more, so
  // asking for them early cannot take them from under its feet. (Beyond the
  // next slot's header this is a guess at its size: small messages come in
  // runs.)
  const uint64_t end = std::min(tail_, pos + kPrefetchBytes);
  for (uint64_t p = pos; p < end; p += kSlotAlign) __builtin_prefetch(data_ + p % capacity_, 0);
}

uint64_t RingSegment::SlotFieldOffset(uint64_t pos, size_t field_offset) const {
  return kHeaderBytes + pos % capacity_ + field_offset;
}

void RingSegment::Damaged(absl::string_view where, absl::string_view field, uint64_t value, uint64_t offset,
                          absl::string_view why) const {
  if (!damage_.ok()) return;
  damage_ = absl::DataLossError(absl::StrCat("segment damaged: ", where, " field ", field, " = ", value,
                                             " at byte offset ", offset, " of the segment: ", why));
}

bool RingSegment::CheckState() const {
  if (!damage_.ok()) return false;
  const State& s = h_->state;
  // The common case in a few compares; the report (which field, why) apart.
  const bool good = (s.free_pos | s.claim_pos | tail_) % kSlotAlign == 0 && s.free_pos <= tail_ &&
                    tail_ - s.free_pos <= capacity_ && s.claim_pos >= s.free_pos && s.claim_pos <= tail_;
  return good || ReportBadState();
}

bool RingSegment::ReportBadState() const {
  const State& s = h_->state;
  const uint64_t base = offsetof(SegmentHeader, state);
  struct Field {
    const char* name;
    uint64_t value;
    size_t offset;
  };
  const uint64_t tail_offset = offsetof(SegmentHeader, producer) + offsetof(ProducerState, tail);
  for (const Field& f : {Field{"free_pos", s.free_pos, base + offsetof(State, free_pos)},
                         Field{"claim_pos", s.claim_pos, base + offsetof(State, claim_pos)},
                         Field{"tail", tail_, tail_offset}}) {
    if (f.value % kSlotAlign != 0) {
      Damaged(f.offset == tail_offset ? "producer state" : "state", f.name, f.value, f.offset,
              "not a multiple of 64");
      return false;
    }
  }
  if (s.free_pos > tail_) {
    Damaged("state", "free_pos", s.free_pos, base + offsetof(State, free_pos), absl::StrCat("past tail ", tail_));
  } else if (tail_ - s.free_pos > capacity_) {
    Damaged("producer state", "tail", tail_, tail_offset,
            absl::StrCat("more than the capacity (", capacity_, ") past free_pos ", s.free_pos));
  } else if (s.claim_pos < s.free_pos || s.claim_pos > tail_) {
    Damaged("state", "claim_pos", s.claim_pos, base + offsetof(State, claim_pos),
            absl::StrCat("outside [free_pos ", s.free_pos, ", tail ", tail_, "]"));
  }
  return damage_.ok();
}

bool RingSegment::ReadSlot(uint64_t pos, SlotHeader* out) const {
  if (!damage_.ok()) return false;
  // A slot past the snapshot may have been published since (a producer
  // committing its reservation, a consumer acking what another one saw).
  if (pos >= tail_) RefreshTail();
  if (pos % kSlotAlign != 0 || pos < h_->state.free_pos || pos >= tail_) return ReportBadSlot(pos, nullptr);
  // One copy: a concurrent stray writer cannot change what was checked.
  std::memcpy(out, SlotAt(pos), sizeof(SlotHeader));
  std::atomic_signal_fence(std::memory_order_seq_cst);
  const uint64_t in_area = pos % capacity_;
  const bool good = out->position == pos && out->state >= kReserved && out->state <= kAbandoned &&
                    out->total_bytes >= kSlotAlign && out->total_bytes % kSlotAlign == 0 &&
                    out->total_bytes <= capacity_ - in_area && out->total_bytes <= tail_ - pos &&
                    (out->state == kPad || out->payload_bytes <= out->total_bytes - kSlotHeaderBytes);
  return good || ReportBadSlot(pos, out);
}

bool RingSegment::ReportBadSlot(uint64_t pos, const SlotHeader* out) const {
  const uint64_t tail = tail_;
  if (out == nullptr) {
    Damaged("slot", "position", pos, SlotFieldOffset(pos - pos % kSlotAlign, offsetof(SlotHeader, position)),
            absl::StrCat("not a slot boundary in [free_pos ", h_->state.free_pos, ", tail ", tail, ")"));
    return false;
  }
  const uint64_t in_area = pos % capacity_;
  if (out->position != pos) {
    Damaged("slot", "position", out->position, SlotFieldOffset(pos, offsetof(SlotHeader, position)),
            absl::StrCat("the slot at position ", pos, " names another position"));
  } else if (out->state < kReserved || out->state > kAbandoned) {
    Damaged("slot", "state", out->state, SlotFieldOffset(pos, offsetof(SlotHeader, state)), "unknown slot state");
  } else if (out->total_bytes < kSlotAlign || out->total_bytes % kSlotAlign != 0 ||
             out->total_bytes > capacity_ - in_area || out->total_bytes > tail - pos) {
    Damaged("slot", "total_bytes", out->total_bytes, SlotFieldOffset(pos, offsetof(SlotHeader, total_bytes)),
            absl::StrCat("not a multiple of 64 in (0, ", std::min(capacity_ - in_area, tail - pos),
                         "] (to the end of the data area or the tail)"));
  } else if (out->state != kPad && out->payload_bytes > out->total_bytes - kSlotHeaderBytes) {
    Damaged("slot", "payload_bytes", out->payload_bytes, SlotFieldOffset(pos, offsetof(SlotHeader, payload_bytes)),
            absl::StrCat("more than its slot of ", out->total_bytes, " bytes holds"));
  }
  return damage_.ok();
}

}  // namespace shm_ring_internal
}  // namespace moerl
