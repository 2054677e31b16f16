// The shared-memory layout of a ShmRing segment and the operations on it
// (internal; ShmRing is the public face).
//
// Segment = SegmentHeader (padded to kHeaderBytes) + a data area of
// capacity_bytes holding slots. Positions are monotonic 64-bit byte counts;
// a slot lives at position % capacity and never wraps (a kPad slot fills the
// end of the area instead). Slots in [free_pos, tail) are live:
//
//   kReserved   a producer is writing the payload (owner = that producer)
//   kCommitted  ready to take (payload complete, checksummed)
//   kTaken      a consumer copies it out (plain) or holds it until Ack
//   kFree, kPad, kAbandoned   waiting for free_pos to move past them
//
// Two locks. Producers and consumers do not share a lock on the hot path:
//
//   producer_mutex  guards ProducerState (tail, pushed, pushed_bytes). A
//                   producer writes new slots past `tail`, where nobody
//                   looks, then moves `tail` over them (release store).
//   mutex           guards State (free_pos, claim_pos, the other counters),
//                   the participant table, and every slot in
//                   [free_pos, tail). Consumers read `tail` (acquire) once
//                   per lock (tail_snapshot()); producers read `free_pos`
//                   (acquire) only when their cached copy says the ring is
//                   full.
//
// Lock order: producer_mutex before mutex. Whoever holds only `mutex` may
// try (never wait for) producer_mutex. A producer is deregistered only by
// someone holding both, after the producer journal has been replayed, so
// a reserved slot that a replay publishes always still has its owner
// registered and is abandoned with it.
//
// Crash safety. Payload bytes are written without a lock, but a slot becomes
// kCommitted, and so visible, only after its payload is complete. Every
// change of shared state goes through a one-entry redo journal per lock: the
// new state (and for `mutex` at most one slot header and one participant
// entry) is written to the journal, the journal is marked valid, then
// applied, then marked invalid. A process killed anywhere in between leaves
// the robust mutex to the next locker with owner_died, which re-applies a
// valid journal (idempotent: it copies values) and then sweeps for dead
// participants. `mutex`'s journal writes its slot header only while the slot
// is still live (position >= free_pos): once free_pos has passed it, its
// bytes may already belong to a producer's new slot.
//
// Damage. Everything read from shared memory is bounds-checked before it is
// used to address or size anything: the positions (aligned, ordered, within
// one capacity; CheckState on every lock of `mutex`, CheckProducerState on
// every lock of producer_mutex) and each slot header a walk visits
// (ReadSlot: position, total_bytes, payload_bytes, state). A bad value stops
// the walk and is recorded as damage() (sticky), a DataLoss naming the
// field, its value and its byte offset in the segment; callers return it. So
// a segment damaged by a stray writer gives errors, never a loop, an
// over-read or a crash.
//
// Methods of RingSegment require `mutex`, except where noted.
#ifndef MOERL_COMMON_TRANSPORT_SHM_RING_SEGMENT_H_
#define MOERL_COMMON_TRANSPORT_SHM_RING_SEGMENT_H_

#include <pthread.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/transport/message_ring.h"

namespace moerl {
namespace shm_ring_internal {

inline constexpr char kSegmentMagic[8] = {'M', 'O', 'E', 'R', 'L', 'R', 'N', 'G'};
// 2: 64-bit RingChecksum per payload (was CRC32C), 64-byte slot headers.
// 3: producer_mutex, ProducerState and its journal; depth derived from counters.
inline constexpr uint32_t kLayoutVersion = 3;
inline constexpr uint32_t kReadyValue = 0x52454459;  // "REDY"
inline constexpr uint32_t kMaxParticipants = 64;
inline constexpr uint64_t kSlotAlign = 64;
inline constexpr uint64_t kHeaderBytes = 16384;
inline constexpr uint32_t kNoOwner = 0xFFFFFFFFu;
inline constexpr uint64_t kNoSlot = ~0ull;

enum SlotState : uint32_t {
  kReserved = 1,
  kCommitted = 2,
  kTaken = 3,
  kFree = 4,
  kPad = 5,
  kAbandoned = 6,
};

struct SlotHeader {
  uint32_t state;
  uint32_t owner;          // participant index (kReserved, kTaken)
  uint64_t position;       // absolute position of this slot (ticket - 1)
  uint64_t total_bytes;    // header + payload + padding, a multiple of kSlotAlign
  uint32_t payload_bytes;
  uint32_t delivery_count;
  uint64_t checksum;       // RingChecksum of the payload (0 when checksums are off)
};
static_assert(sizeof(SlotHeader) == 40, "slot header layout changed: bump kLayoutVersion");
// The payload starts one cache line into the slot: 64-byte aligned, so the
// copies in and out never split a vector store across two lines. (Costs
// nothing at 64 B or 4 KiB payloads: slots are 64-byte multiples anyway.)
inline constexpr uint64_t kSlotHeaderBytes = 64;

// Everything that changes under `mutex`, except slots and participants.
// free_pos comes first: producers read it without the lock (8-byte atomic).
struct State {
  uint64_t free_pos;
  uint64_t claim_pos;  // no kCommitted slot in [free_pos, claim_pos) but `requeued` ones
  // Messages (and payload bytes) that became visible through Commit of a
  // reserved slot; those appended complete are counted in ProducerState.
  uint64_t committed, committed_bytes;
  uint64_t popped, popped_bytes, acked, redelivered, redelivered_bytes;
  uint64_t in_flight, requeued;
  uint32_t producers_registered, producers_closed, producers_died, consumers;
};
static_assert(offsetof(State, free_pos) == 0, "free_pos is stored apart from the rest of State");

// Everything that changes under producer_mutex. Readers without it load
// `tail` with acquire; `pushed` and `pushed_bytes` are stored before it.
struct ProducerState {
  uint64_t tail;
  uint64_t pushed, pushed_bytes;  // messages appended complete, and their payload bytes
};

struct Participant {
  uint32_t in_use;
  uint32_t role;  // RingRole
  int32_t pid;
  uint32_t producer_closed;
  uint64_t start_time;
  uint64_t pid_namespace;  // PidNamespaceId() of the participant
};

struct Journal {
  std::atomic<uint32_t> valid;
  uint32_t participant_index;  // kNoOwner: none
  uint64_t slot_position;      // absolute slot position; kNoSlot: none
  State state;
  SlotHeader slot;
  Participant participant;
};

struct ProducerJournal {
  std::atomic<uint32_t> valid;
  ProducerState state;
};

struct SegmentHeader {
  char magic[8];
  uint32_t layout_version;
  uint32_t header_bytes;
  uint64_t capacity_bytes;
  uint64_t segment_bytes;
  uint32_t mode;  // DeliveryMode
  uint32_t expected_producers;
  uint32_t checksum_payloads;
  int32_t owner_pid;
  uint64_t owner_start_time;
  uint64_t owner_pid_namespace;
  uint64_t created_unix_seconds;
  std::atomic<uint32_t> ready;

  alignas(64) pthread_mutex_t mutex;
  alignas(64) std::atomic<uint32_t> not_empty_seq;
  std::atomic<uint32_t> not_empty_sleeping;  // 1: a consumer may sleep on not_empty_seq
  alignas(64) std::atomic<uint32_t> not_full_seq;
  std::atomic<uint32_t> not_full_sleeping;   // 1: a producer may sleep on not_full_seq
  alignas(64) std::atomic<int64_t> last_sweep_ns;
  alignas(64) State state;
  Journal journal;
  Participant participants[kMaxParticipants];
  // The producers' side, on lines of its own.
  alignas(64) pthread_mutex_t producer_mutex;
  alignas(64) ProducerState producer;
  // Apart from `tail`, which consumers read: writing the journal then does
  // not take the line from them three times a push.
  alignas(64) ProducerJournal producer_journal;
};
static_assert(sizeof(SegmentHeader) <= kHeaderBytes, "segment header outgrew kHeaderBytes");

inline uint64_t AlignSlot(uint64_t n) { return (n + kSlotAlign - 1) / kSlotAlign * kSlotAlign; }

// Points where shm_ring_crash_test kills a participant on purpose.
enum class CrashPoint {
  kJournalValid,        // journal written and marked valid, nothing applied
  kJournalHalfApplied,  // slot, participant and part of the state applied, not all
  kSlotReserved,        // Push: slot reserved, payload not written
  kPayloadWritten,      // Push: payload written, slot not committed
  kSlotTaken,           // Pop: slot taken, payload not copied out
  kPayloadCopiedOut,    // Pop: payload copied out, slot not released
};
using CrashHook = void (*)(CrashPoint point);

// A view of one mapped segment; does not own the mapping. One per
// participant (its caches are per process).
class RingSegment {
 public:
  RingSegment(SegmentHeader* header, char* data, uint64_t pid_namespace)
      : h_(header), data_(data), capacity_(header->capacity_bytes), pid_namespace_(pid_namespace) {}

  SegmentHeader* header() const { return h_; }
  uint64_t capacity() const { return capacity_; }
  // Slot headers store payload sizes in 32 bits: a ring larger than 4 GiB
  // still takes messages of at most UINT32_MAX bytes.
  uint64_t largest_payload() const {
    return std::min<uint64_t>(capacity_ - kSlotHeaderBytes, UINT32_MAX);
  }
  DeliveryMode mode() const { return static_cast<DeliveryMode>(h_->mode); }

  // Re-applies a journal that a dead process left valid.
  void RecoverJournal();

  // `tail` as last loaded (acquire) by RefreshTail, or published by this
  // participant: the end of what a holder of `mutex` looks at (an older
  // value only hides the newest messages). Returns true if it moved; a tail
  // lower than one seen before is damage (positions only grow). (Any time.)
  bool RefreshTail() const;
  // RefreshTail if free_pos or claim_pos are past the snapshot (another
  // consumer saw a newer tail).
  void RefreshTailIfBehind() {
    if (h_->state.claim_pos > tail_ || h_->state.free_pos > tail_) RefreshTail();
  }
  uint64_t tail_snapshot() const { return tail_; }
  // The positions each side moves, loaded (acquire) without a lock, and
  // free_pos as a producer last loaded it.
  uint64_t LoadTail() const { return __atomic_load_n(&h_->producer.tail, __ATOMIC_ACQUIRE); }
  uint64_t LoadFreePos() const { return __atomic_load_n(&h_->state.free_pos, __ATOMIC_ACQUIRE); }
  uint64_t free_pos_seen() const { return free_pos_seen_; }

  // Participants.
  std::optional<uint32_t> Register(RingRole role, pid_t pid, uint64_t start_time);
  void MarkProducerClosed(uint32_t index);
  // Gives back what `index` holds (requeue taken, abandon reserved) and frees
  // its entry; a producer that had not closed counts as died. A producer
  // needs producer_mutex held too, its journal replayed.
  void Deregister(uint32_t index);
  // Deregisters every participant whose process is gone (not `self_pid`'s,
  // and only among those in this process's PID namespace). A dead producer
  // needs producer_mutex: if the caller does not hold it, it is tried (not
  // waited for), its journal replayed if its owner died, and the producer
  // left for a later sweep if someone else holds it. Returns how many.
  int SweepDead(pid_t self_pid, bool holds_producer_mutex);
  // Participants in another PID namespace count as alive (we cannot tell).
  bool AnyParticipantAlive() const;
  uint64_t pid_namespace() const { return pid_namespace_; }

  // Tests only: called at each CrashPoint (null: never).
  void set_crash_hook(CrashHook hook) { crash_hook_ = hook; }
  void MaybeCrash(CrashPoint point) const {
    if (crash_hook_ != nullptr) crash_hook_(point);
  }

  // --- Producer side: these require producer_mutex (not `mutex`).
  //
  // Re-applies a producer journal that a dead producer left valid; true if
  // it did (tail may have moved).
  bool RecoverProducerJournal();
  // Validates `tail` against free_pos: false (and damage) if it cannot be
  // trusted.
  bool CheckProducerState();
  // Free bytes past `tail` by the cached free_pos, reloading it (acquire)
  // when the cache says fewer than `want` (0, and damage, if free_pos cannot
  // be trusted).
  uint64_t FreeBytes(uint64_t tail, uint64_t want);
  // FreeBytes when the cache is not enough: loads free_pos and validates it.
  __attribute__((noinline)) uint64_t ReloadFreePos(uint64_t tail);
  // Reloads free_pos (acquire); true if it moved since last seen.
  bool RefreshFreePos();
  // Reserves a slot for `payload_bytes` past `tail` (kReserved, owned by
  // `owner`; a kPad first where the area wraps) and publishes it; nullopt if
  // it does not fit now (a pad may have been published).
  std::optional<uint64_t> Reserve(uint32_t payload_bytes, uint32_t owner);
  // Writes up to payloads.size() complete kCommitted slots (and a kPad where
  // the area wraps) past `tail`, where nobody looks, then moves `tail` over
  // all of them in one journaled change: a crash before that change leaves
  // nothing visible, after it every message is complete. Stops where the
  // ring is full. Returns how many were appended.
  size_t AppendCommitted(absl::Span<const absl::string_view> payloads, bool checksum);

  // --- Consumer side and slots in [free_pos, tail): these require `mutex`.
  //
  // Commit and Abandon return false (and record damage) if the slot is no
  // longer the caller's reservation.
  bool Commit(uint64_t position, uint64_t checksum);
  // Producer: gives up a slot it reserved (it becomes kAbandoned).
  bool Abandon(uint64_t position);
  // Consumer, plain mode: copies out up to `max` committed slots of at most
  // `max_bytes` that lie together at `free_pos` (the oldest), into
  // out[0, n) (out has room for `max`), then frees them all in one journaled
  // State change: a crash before it leaves them all queued (nothing lost,
  // nothing delivered twice). Stops at the first slot that is taken or
  // reserved, too large, or fails its checksum (left for Take). free_pos
  // stops right after the last one taken: padding or freed slots beyond it
  // are passed by the next call, Release or AdvanceFree. Returns n.
  size_t ConsumeFront(RingMessage* out, size_t max, uint32_t max_bytes, bool checksum);
  // Consumer: takes the oldest committed slot (redelivered first); nullopt if none.
  std::optional<uint64_t> Take(uint32_t owner);
  // Plain-mode return or Ack: frees the slot.
  void Release(uint64_t position, bool acked);
  // True if `position` names a slot that `owner` holds (kTaken).
  bool Holds(uint64_t position, uint32_t owner) const;
  // Moves free_pos past freed, padding and abandoned slots; true if it moved.
  bool AdvanceFree();

  RingCounters Counters() const;
  bool EndOfStream() const;
  RingStats Stats() const;
  // Copies of up to `max` queued messages, oldest first, not taken.
  std::vector<RingMessage> Peek(size_t max);

  // The first damage found (sticky; OK if none).
  const absl::Status& damage() const { return damage_; }
  // Validates State against the tail snapshot: false (and damage) if it
  // cannot be trusted.
  bool CheckState() const;
  // Copies the header of the slot at `pos` (in [free_pos, tail)) into *out
  // and validates it: false (and damage) if any field is out of bounds.
  bool ReadSlot(uint64_t pos, SlotHeader* out) const;

  // Without a lock too (the slot is owned by the caller).
  SlotHeader* SlotAt(uint64_t position) const {
    return reinterpret_cast<SlotHeader*>(data_ + position % capacity_);
  }
  char* PayloadAt(uint64_t position) const {
    return data_ + position % capacity_ + kSlotHeaderBytes;
  }

 private:
  // Writes `state`, the slot at `slot_position` (if any) and the participant
  // entry (if any) through the journal.
  void Apply(const State& state, const SlotHeader* slot, uint64_t slot_position,
             const Participant* participant, uint32_t participant_index);
  // Producers: writes a kPad slot from `tail` (past the published tail) to
  // the end of the data area; returns the position after it.
  uint64_t WritePad(uint64_t tail);
  // Marks a journal just written as valid (the kJournalValid crash point).
  void MarkValid(std::atomic<uint32_t>* valid) const;
  // Writes `state` through the producer journal (producer_mutex).
  void ApplyProducer(const ProducerState& state);
  // Replays the producer journal if producer_mutex's owner died, for a
  // holder of `mutex` only: tries producer_mutex, never waits. False if a
  // live process holds it.
  bool TryRecoverProducerSide();
  // Consumers: asks for the cache lines of up to kPrefetchBytes of slots at
  // `pos`, below the tail snapshot, to overlap their transfers from the
  // producer's core with the copy of the current message.
  static constexpr uint64_t kPrefetchBytes = 256;
  void PrefetchAfter(uint64_t pos) const;
  void Requeue(uint64_t position);
  void AdvanceClaim();
  // CheckState and ReadSlot found something wrong: record which field and
  // why as damage (returns false). Out of line, to keep the checks short.
  __attribute__((cold, noinline)) bool ReportBadState() const;
  // `out` null: the position itself is bad.
  __attribute__((cold, noinline)) bool ReportBadSlot(uint64_t pos, const SlotHeader* out) const;
  // ReadSlot, and the slot must still be a reservation (Commit, Abandon).
  bool ReadReservation(uint64_t position, SlotHeader* slot) const;
  // Records the first damage: `field` of `where` holds `value`, at `offset`.
  void Damaged(absl::string_view where, absl::string_view field, uint64_t value, uint64_t offset,
               absl::string_view why) const;
  uint64_t SlotFieldOffset(uint64_t pos, size_t field_offset) const;

  SegmentHeader* h_;
  char* data_;
  uint64_t capacity_;
  uint64_t pid_namespace_;
  mutable uint64_t tail_ = 0;  // see tail_snapshot()
  uint64_t free_pos_seen_ = 0;  // producers: free_pos as last loaded
  CrashHook crash_hook_ = nullptr;
  mutable absl::Status damage_;
};

}  // namespace shm_ring_internal
}  // namespace moerl

#endif  // MOERL_COMMON_TRANSPORT_SHM_RING_SEGMENT_H_
