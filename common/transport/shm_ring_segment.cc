// Slot and participant bookkeeping of a ShmRing segment; see
// shm_ring_segment.h for the states and the journal.
#include "common/transport/shm_ring_segment.h"

#include <cstddef>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

#include "common/logging.h"
#include "common/transport/ring_checksum.h"
#include "common/transport/shm_ring_sync.h"

namespace moerl {
namespace shm_ring_internal {

void RingSegment::Apply(const State& state, const SlotHeader* slot, uint64_t slot_position,
                        const Participant* participant, uint32_t participant_index) {
  Journal& j = h_->journal;
  j.state = state;
  j.slot_position = slot != nullptr ? slot_position : kNoSlot;
  if (slot != nullptr) j.slot = *slot;
  j.participant_index = participant != nullptr ? participant_index : kNoOwner;
  if (participant != nullptr) j.participant = *participant;
  // Crash ordering is about one thread being stopped at an instruction:
  // x86 makes stores visible in program order, so only the compiler must be
  // kept from reordering (a signal fence, not a CPU fence).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  j.valid.store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  MaybeCrash(CrashPoint::kJournalValid);
  RecoverJournal();
}

void RingSegment::RecoverJournal() {
  Journal& j = h_->journal;
  if (j.valid.load(std::memory_order_relaxed) == 0) return;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  h_->state = j.state;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  MaybeCrash(CrashPoint::kJournalHalfApplied);
  if (j.slot_position != kNoSlot) {
    if (j.slot_position % kSlotAlign != 0) {
      Damaged("journal", "slot_position", j.slot_position,
              offsetof(SegmentHeader, journal) + offsetof(Journal, slot_position), "not a slot boundary");
    } else {
      *SlotAt(j.slot_position) = j.slot;
    }
  }
  if (j.participant_index < kMaxParticipants) h_->participants[j.participant_index] = j.participant;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  j.valid.store(0, std::memory_order_relaxed);
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
  for (uint64_t pos = h_->state.free_pos; pos < h_->state.tail;) {
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

int RingSegment::SweepDead(pid_t self_pid) {
  int dead = 0;
  for (uint32_t i = 0; i < kMaxParticipants; ++i) {
    const Participant& p = h_->participants[i];
    if (!p.in_use || p.pid == self_pid) continue;
    if (p.pid_namespace != pid_namespace_) continue;
    if (ProcessAlive(p.pid, p.start_time)) continue;
    Deregister(i);
    ++dead;
  }
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

std::optional<uint64_t> RingSegment::Reserve(uint32_t payload_bytes, uint32_t owner) {
  const uint64_t need = AlignSlot(kSlotHeaderBytes + payload_bytes);
  MOERL_CHECK(need <= capacity_) << "caller checks the largest payload";
  while (true) {
    const State& cur = h_->state;
    const uint64_t free_bytes = capacity_ - (cur.tail - cur.free_pos);
    const uint64_t to_end = capacity_ - cur.tail % capacity_;
    if (to_end < need) {
      // The slot would cross the end of the area: pad to the end, then retry
      // at offset 0. The pad is freed as soon as free_pos reaches it.
      if (free_bytes < to_end) return std::nullopt;
      SlotHeader pad{};
      pad.state = kPad;
      pad.owner = kNoOwner;
      pad.position = cur.tail;
      pad.total_bytes = to_end;
      State s = cur;
      s.tail += to_end;
      Apply(s, &pad, cur.tail, nullptr, 0);
      AdvanceFree();
      AdvanceClaim();
      continue;
    }
    if (free_bytes < need) return std::nullopt;
    SlotHeader slot{};
    slot.state = kReserved;
    slot.owner = owner;
    slot.position = cur.tail;
    slot.total_bytes = need;
    slot.payload_bytes = payload_bytes;
    slot.delivery_count = 1;
    State s = cur;
    const uint64_t position = cur.tail;
    s.tail += need;
    Apply(s, &slot, position, nullptr, 0);
    return position;
  }
}

bool RingSegment::Commit(uint64_t position, uint64_t checksum) {
  SlotHeader slot;
  if (!ReadSlot(position, &slot)) return false;
  if (slot.state != kReserved) {
    Damaged("slot", "state", slot.state, SlotFieldOffset(position, offsetof(SlotHeader, state)),
            "the producer's reserved slot changed state under it");
    return false;
  }
  slot.state = kCommitted;
  slot.checksum = checksum;
  State s = h_->state;
  ++s.pushed;
  ++s.depth_messages;
  s.depth_bytes += slot.payload_bytes;
  Apply(s, &slot, position, nullptr, 0);
  return true;
}

bool RingSegment::Abandon(uint64_t position) {
  SlotHeader slot;
  if (!ReadSlot(position, &slot)) return false;
  if (slot.state != kReserved) {
    Damaged("slot", "state", slot.state, SlotFieldOffset(position, offsetof(SlotHeader, state)),
            "the producer's reserved slot changed state under it");
    return false;
  }
  slot.state = kAbandoned;
  Apply(h_->state, &slot, position, nullptr, 0);
  AdvanceFree();
  AdvanceClaim();
  return true;
}

size_t RingSegment::AppendCommitted(absl::Span<const absl::string_view> payloads, bool checksum) {
  State s = h_->state;
  size_t n = 0;
  while (n < payloads.size()) {
    const absl::string_view payload = payloads[n];
    const uint64_t need = AlignSlot(kSlotHeaderBytes + payload.size());
    const uint64_t free_bytes = capacity_ - (s.tail - s.free_pos);
    const uint64_t to_end = capacity_ - s.tail % capacity_;
    if (to_end < need) {
      if (free_bytes < to_end + need) break;
      SlotHeader pad{};
      pad.state = kPad;
      pad.owner = kNoOwner;
      pad.position = s.tail;
      pad.total_bytes = to_end;
      *SlotAt(s.tail) = pad;
      s.tail += to_end;
      continue;
    }
    if (free_bytes < need) break;
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
    ++s.depth_messages;
    s.depth_bytes += payload.size();
    ++n;
  }
  if (n == 0) return 0;  // a pad written past `tail` is never seen
  Apply(s, nullptr, 0, nullptr, 0);
  AdvanceFree();
  AdvanceClaim();
  return n;
}

size_t RingSegment::ConsumeFront(std::vector<RingMessage>* out, size_t max, uint32_t max_bytes,
                                 bool checksum) {
  State s = h_->state;
  size_t n = 0;
  uint64_t pos = s.free_pos;
  SlotHeader slot;
  while (n < max && pos < s.tail) {
    if (!ReadSlot(pos, &slot)) break;
    if (slot.state == kFree || slot.state == kPad || slot.state == kAbandoned) {
      pos += slot.total_bytes;
      continue;
    }
    if (slot.state != kCommitted || slot.payload_bytes > max_bytes) break;
    if (out->size() <= n) out->emplace_back();
    RingMessage& m = (*out)[n];
    m.payload.resize(slot.payload_bytes);
    if (checksum) {
      if (RingChecksumCopy(&m.payload[0], PayloadAt(pos), slot.payload_bytes) != slot.checksum) break;
    } else {
      std::memcpy(&m.payload[0], PayloadAt(pos), slot.payload_bytes);
    }
    m.delivery_count = slot.delivery_count;
    m.ticket = 0;
    if (pos < s.claim_pos) --s.requeued;  // committed below claim_pos: a requeued one
    --s.depth_messages;
    s.depth_bytes -= slot.payload_bytes;
    ++s.popped;
    pos += slot.total_bytes;
    ++n;
  }
  if (n == 0) return 0;
  s.free_pos = pos;
  while (s.free_pos < s.tail && ReadSlot(s.free_pos, &slot)) {
    if (slot.state != kFree && slot.state != kPad && slot.state != kAbandoned) break;
    s.free_pos += slot.total_bytes;
  }
  if (s.claim_pos < s.free_pos) s.claim_pos = s.free_pos;
  while (s.claim_pos < s.tail && ReadSlot(s.claim_pos, &slot)) {
    if (slot.state == kCommitted || slot.state == kReserved) break;
    s.claim_pos += slot.total_bytes;
  }
  Apply(s, nullptr, 0, nullptr, 0);
  return n;
}

std::optional<uint64_t> RingSegment::Take(uint32_t owner) {
  const State& cur = h_->state;
  uint64_t pos = cur.requeued > 0 ? cur.free_pos : cur.claim_pos;
  SlotHeader slot;
  while (pos < cur.tail) {
    if (!ReadSlot(pos, &slot)) return std::nullopt;
    if (slot.state == kCommitted) break;
    pos += slot.total_bytes;
  }
  if (pos >= cur.tail) return std::nullopt;
  slot.state = kTaken;
  slot.owner = owner;
  State s = cur;
  if (pos < cur.claim_pos) --s.requeued;
  --s.depth_messages;
  s.depth_bytes -= slot.payload_bytes;
  ++s.in_flight;
  ++s.popped;
  // Move claim_pos past what is no longer takeable, counting this slot as taken.
  SlotHeader other;
  while (s.claim_pos < s.tail && ReadSlot(s.claim_pos, &other)) {
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
  ++s.depth_messages;
  s.depth_bytes += slot.payload_bytes;
  ++s.redelivered;
  if (position < s.claim_pos) ++s.requeued;
  Apply(s, &slot, position, nullptr, 0);
}

void RingSegment::Release(uint64_t position, bool acked) {
  SlotHeader slot;
  if (!ReadSlot(position, &slot)) return;
  slot.state = kFree;
  State s = h_->state;
  --s.in_flight;
  if (acked) ++s.acked;
  // Move free_pos past freed slots, counting this one as free.
  SlotHeader other;
  while (s.free_pos < s.tail && ReadSlot(s.free_pos, &other)) {
    const uint32_t state = s.free_pos == position ? kFree : other.state;
    if (state != kFree && state != kPad && state != kAbandoned) break;
    s.free_pos += other.total_bytes;
  }
  if (s.claim_pos < s.free_pos) s.claim_pos = s.free_pos;
  Apply(s, &slot, position, nullptr, 0);
}

bool RingSegment::Holds(uint64_t position, uint32_t owner) const {
  const State& s = h_->state;
  if (position < s.free_pos || position >= s.tail || position % kSlotAlign != 0) return false;
  const SlotHeader* slot = SlotAt(position);
  return slot->position == position && slot->state == kTaken && slot->owner == owner;
}

void RingSegment::AdvanceFree() {
  State s = h_->state;
  SlotHeader slot;
  while (s.free_pos < s.tail && ReadSlot(s.free_pos, &slot)) {
    if (slot.state != kFree && slot.state != kPad && slot.state != kAbandoned) break;
    s.free_pos += slot.total_bytes;
  }
  if (s.claim_pos < s.free_pos) s.claim_pos = s.free_pos;
  if (s.free_pos != h_->state.free_pos) Apply(s, nullptr, 0, nullptr, 0);
}

void RingSegment::AdvanceClaim() {
  State s = h_->state;
  SlotHeader slot;
  while (s.claim_pos < s.tail && ReadSlot(s.claim_pos, &slot)) {
    if (slot.state == kCommitted || slot.state == kReserved) break;
    s.claim_pos += slot.total_bytes;
  }
  if (s.claim_pos != h_->state.claim_pos) Apply(s, nullptr, 0, nullptr, 0);
}

RingCounters RingSegment::Counters() const {
  const State& s = h_->state;
  RingCounters r;
  r.depth_messages = s.depth_messages;
  r.depth_bytes = s.depth_bytes;
  r.in_flight = s.in_flight;
  r.pushed = s.pushed;
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

bool RingSegment::EndOfStream() const { return Counters().EndOfStream(); }

RingStats RingSegment::Stats() const { return Counters().ToStats(capacity_, largest_payload()); }

std::vector<RingMessage> RingSegment::Peek(size_t max) const {
  std::vector<RingMessage> out;
  const State& s = h_->state;
  SlotHeader slot;
  for (uint64_t pos = s.free_pos; pos < s.tail && out.size() < max && ReadSlot(pos, &slot);) {
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
  const uint64_t base = offsetof(SegmentHeader, state);
  struct Field {
    const char* name;
    uint64_t value;
    size_t offset;
  };
  for (const Field& f : {Field{"free_pos", s.free_pos, offsetof(State, free_pos)},
                         Field{"claim_pos", s.claim_pos, offsetof(State, claim_pos)},
                         Field{"tail", s.tail, offsetof(State, tail)}}) {
    if (f.value % kSlotAlign != 0) {
      Damaged("state", f.name, f.value, base + f.offset, "not a multiple of 64");
      return false;
    }
  }
  if (s.free_pos > s.tail) {
    Damaged("state", "free_pos", s.free_pos, base + offsetof(State, free_pos), absl::StrCat("past tail ", s.tail));
  } else if (s.tail - s.free_pos > capacity_) {
    Damaged("state", "tail", s.tail, base + offsetof(State, tail),
            absl::StrCat("more than the capacity (", capacity_, ") past free_pos ", s.free_pos));
  } else if (s.claim_pos < s.free_pos || s.claim_pos > s.tail) {
    Damaged("state", "claim_pos", s.claim_pos, base + offsetof(State, claim_pos),
            absl::StrCat("outside [free_pos ", s.free_pos, ", tail ", s.tail, "]"));
  }
  return damage_.ok();
}

bool RingSegment::ReadSlot(uint64_t pos, SlotHeader* out) const {
  if (!damage_.ok()) return false;
  const uint64_t tail = h_->state.tail;
  if (pos % kSlotAlign != 0 || pos < h_->state.free_pos || pos >= tail) {
    Damaged("slot", "position", pos, SlotFieldOffset(pos - pos % kSlotAlign, offsetof(SlotHeader, position)),
            absl::StrCat("not a slot boundary in [free_pos ", h_->state.free_pos, ", tail ", tail, ")"));
    return false;
  }
  // One copy: a concurrent stray writer cannot change what was checked.
  std::memcpy(out, SlotAt(pos), sizeof(SlotHeader));
  std::atomic_signal_fence(std::memory_order_seq_cst);
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
