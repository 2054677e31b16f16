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
// Crash safety. Payload bytes are written outside the mutex, but a slot
// becomes kCommitted, and so visible, only after its payload is complete.
// Every change of shared state under the mutex goes through a one-entry
// redo journal: the new State, at most one slot header and at most one
// participant entry are written to the journal, the journal is marked
// valid, then applied, then marked invalid. A process killed anywhere in
// between leaves the robust mutex to the next locker with owner_died, which
// re-applies a valid journal (applying is idempotent: it copies values) and
// then sweeps for dead participants.
//
// Damage. Everything read from shared memory is bounds-checked before it is
// used to address or size anything: State (positions aligned, ordered,
// within one capacity; CheckState, on every lock) and each slot header a
// walk visits (ReadSlot: position, total_bytes, payload_bytes, state). A
// bad value stops the walk and is recorded as damage() (sticky), a DataLoss
// naming the field, its value and its byte offset in the segment; callers
// return it. So a segment damaged by a stray writer gives errors, never a
// loop, an over-read or a crash.
//
// All methods of RingSegment require the segment mutex, except where noted.
#ifndef MOERL_COMMON_TRANSPORT_SHM_RING_SEGMENT_H_
#define MOERL_COMMON_TRANSPORT_SHM_RING_SEGMENT_H_

#include <pthread.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
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
inline constexpr uint32_t kLayoutVersion = 2;
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

// Everything that changes under the mutex, except slots and participants.
struct State {
  uint64_t free_pos;
  uint64_t claim_pos;  // no kCommitted slot in [free_pos, claim_pos) but `requeued` ones
  uint64_t tail;
  uint64_t pushed, popped, acked, redelivered;
  uint64_t depth_messages, depth_bytes, in_flight, requeued;
  uint32_t producers_registered, producers_closed, producers_died, consumers;
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
};
static_assert(sizeof(SegmentHeader) <= kHeaderBytes, "segment header outgrew kHeaderBytes");

inline uint64_t AlignSlot(uint64_t n) { return (n + kSlotAlign - 1) / kSlotAlign * kSlotAlign; }

// Points where shm_ring_crash_test kills a participant on purpose.
enum class CrashPoint {
  kJournalValid,        // journal written and marked valid, nothing applied
  kJournalHalfApplied,  // State applied, slot and participant not yet
  kSlotReserved,        // Push: slot reserved, payload not written
  kPayloadWritten,      // Push: payload written, slot not committed
  kSlotTaken,           // Pop: slot taken, payload not copied out
  kPayloadCopiedOut,    // Pop: payload copied out, slot not released
};
using CrashHook = void (*)(CrashPoint point);

// A view of one mapped segment; does not own the mapping.
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

  // Participants.
  std::optional<uint32_t> Register(RingRole role, pid_t pid, uint64_t start_time);
  void MarkProducerClosed(uint32_t index);
  // Gives back what `index` holds (requeue taken, abandon reserved) and frees
  // its entry; a producer that had not closed counts as died.
  void Deregister(uint32_t index);
  // Deregisters every participant whose process is gone (not `self_pid`'s,
  // and only among those in this process's PID namespace). Returns how many.
  int SweepDead(pid_t self_pid);
  // Participants in another PID namespace count as alive (we cannot tell).
  bool AnyParticipantAlive() const;
  uint64_t pid_namespace() const { return pid_namespace_; }

  // Tests only: called at each CrashPoint (null: never).
  void set_crash_hook(CrashHook hook) { crash_hook_ = hook; }
  void MaybeCrash(CrashPoint point) const {
    if (crash_hook_ != nullptr) crash_hook_(point);
  }

  // Producer: reserves a slot for `payload_bytes`; nullopt if it does not fit now.
  std::optional<uint64_t> Reserve(uint32_t payload_bytes, uint32_t owner);
  // Commit and Abandon return false (and record damage) if the slot is no
  // longer the caller's reservation.
  bool Commit(uint64_t position, uint64_t checksum);
  // Producer: gives up a slot it reserved (it becomes kAbandoned).
  bool Abandon(uint64_t position);

  // Batches, one journal entry for many messages.
  //
  // Producer: writes up to payloads.size() complete kCommitted slots (and a
  // kPad where the area wraps) past `tail`, where nobody looks, then moves
  // `tail` over all of them in one journaled State change: a crash before
  // that change leaves nothing visible, after it every message is complete.
  // Stops where the ring is full. Returns how many were appended.
  size_t AppendCommitted(absl::Span<const absl::string_view> payloads, bool checksum);
  // Consumer, plain mode: copies out up to `max` committed slots of at most
  // `max_bytes` that lie together at `free_pos` (the oldest), into
  // (*out)[0, n) (grown as needed), then frees them all in one journaled
  // State change: a crash before it leaves them all queued (nothing lost,
  // nothing delivered twice). Stops at the first slot that is taken or
  // reserved, too large, or fails its checksum (left for Take). Returns n.
  size_t ConsumeFront(std::vector<RingMessage>* out, size_t max, uint32_t max_bytes, bool checksum);

  // Consumer: takes the oldest committed slot (redelivered first); nullopt if none.
  std::optional<uint64_t> Take(uint32_t owner);
  // Plain-mode return or Ack: frees the slot.
  void Release(uint64_t position, bool acked);
  // True if `position` names a slot that `owner` holds (kTaken).
  bool Holds(uint64_t position, uint32_t owner) const;

  RingCounters Counters() const;
  bool EndOfStream() const;
  RingStats Stats() const;
  // Copies of up to `max` queued messages, oldest first, not taken.
  std::vector<RingMessage> Peek(size_t max) const;

  // The first damage found (sticky; OK if none).
  const absl::Status& damage() const { return damage_; }
  // Validates State: false (and damage) if it cannot be trusted.
  bool CheckState() const;
  // Copies the header of the slot at `pos` (in [free_pos, tail)) into *out
  // and validates it: false (and damage) if any field is out of bounds.
  bool ReadSlot(uint64_t pos, SlotHeader* out) const;

  // Outside the mutex too (the slot is owned by the caller).
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
  void Requeue(uint64_t position);
  void AdvanceFree();
  void AdvanceClaim();
  // Records the first damage: `field` of `where` holds `value`, at `offset`.
  void Damaged(absl::string_view where, absl::string_view field, uint64_t value, uint64_t offset,
               absl::string_view why) const;
  uint64_t SlotFieldOffset(uint64_t pos, size_t field_offset) const;

  SegmentHeader* h_;
  char* data_;
  uint64_t capacity_;
  uint64_t pid_namespace_;
  CrashHook crash_hook_ = nullptr;
  mutable absl::Status damage_;
};

}  // namespace shm_ring_internal
}  // namespace moerl

#endif  // MOERL_COMMON_TRANSPORT_SHM_RING_SEGMENT_H_
