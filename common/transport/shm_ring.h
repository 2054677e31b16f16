// ShmRing: a MessageRing in a named POSIX shared-memory segment, shared by
// the processes of one node. Variable-size messages, many producers and many
// consumers, per-producer order, plain or acknowledged delivery.
//
//   // Once per run (the pipeline script: `ring create`):
//   MOERL_ASSIGN_OR_RETURN(std::string name, ShmRing::SegmentName("exp1", "trial0", "prompts"));
//   MOERL_RETURN_IF_ERROR(ShmRing::Create(name, {.capacity_bytes = 64 << 20}));
//   // In each stage:
//   MOERL_ASSIGN_OR_RETURN(std::unique_ptr<ShmRing> ring, ShmRing::Open(name, RingRole::kProducer));
//   MOERL_RETURN_IF_ERROR(ring->Push(prompt.SerializeAsString(), absl::Seconds(30)));
//   MOERL_RETURN_IF_ERROR(ring->CloseProducer());
//   // Faster: ring->PushBatch(small_messages, timeout), ring->PopBatch(&messages, 64, timeout),
//   // and ring->PopView(&view, timeout) ... ring->ReleaseView(view) (no copy) for large ones.
//   // At the end of the run (`ring remove`):
//   MOERL_RETURN_IF_ERROR(ShmRing::Remove(name));
//
// Status codes, participants and end of stream: see message_ring.h.
//
// Segment. Created mode 0600 as /dev/shm/moerl.<name>, where <name> is
// "<experiment>.<trial>.<hop>", each part 1-64 of [A-Za-z0-9_-]. It starts
// with magic "MOERLRNG", layout version, header and capacity sizes, all
// checked by Open before anything else is read. Create finds a segment of the
// same name left by a crashed run (its owner process and every participant
// gone) and either reclaims it (CreateOptions::reclaim_stale) or fails with
// the command that removes it.
//
// Space: a message taken in acknowledged mode keeps its place in the ring
// until it is acknowledged, so consumers that hold many unacknowledged
// messages can fill the ring and make producers wait.
//
// Crash contract (tested by shm_ring_fault_test with SIGKILL at random
// points, and shm_ring_crash_test at each named point of the protocol):
// - A producer killed at any instruction never makes a consumer see a torn
//   or partial message: a message becomes visible only after its payload is
//   written and checksummed (RingChecksum, verified on Pop), and every change of
//   shared bookkeeping is journaled (shm_ring_segment.h). Its half-written
//   slot is dropped, and it never blocks the others: the robust mutexes pass
//   to the next locker, and a slot it held is reclaimed once it is found dead.
//   A message whose Push did not return may still arrive (whole) if the
//   kill came after it was journaled.
// - A consumer killed at any point never blocks the others. A message it
//   was copying out is delivered again, in both modes (in plain mode unless
//   the kill lands after Pop released the slot, in its last instructions:
//   then that one message is lost, never duplicated). In acknowledged mode, a message it took but did not Ack is
//   delivered again too, with delivery_count + 1. In plain mode a message
//   whose Pop returned is never delivered again (no duplicates).
// - The fast paths keep this per message: PushBatch publishes a batch of
//   small messages with one journal entry (all of them or none become
//   visible), PopBatch in plain mode frees a batch with one (a consumer
//   killed after it loses at most that batch, never duplicates), and a
//   message held through PopView is delivered again if its holder dies
//   before ReleaseView, in both modes (so a view is at-least-once in plain
//   mode; the repeat carries delivery_count > 1). Tested by
//   shm_ring_fast_fault_test. Push of a small message (<= 4 KiB) and
//   plain-mode Pop of one at the front of the ring take the same one-entry
//   path for a single message (nothing becomes visible, or is freed, before
//   it is complete), so their contract is the one above.
// - Death is noticed by any participant that waits (every kLivenessInterval)
//   or finds a mutex abandoned: kill(pid, 0) plus the process start time,
//   so a reused pid is not mistaken for the dead process. Only participants
//   in the same PID namespace are judged (a tool outside a sandbox does not
//   declare the sandbox's processes dead).
//
// Damage: a segment whose shared bookkeeping a stray writer has broken
// (counters, positions or slot headers out of bounds) makes every call
// return DataLoss naming the field and its byte offset in the segment; it
// never makes one loop, read out of bounds or crash (shm_ring_damage_test).
//
// Locks: producers and consumers each have their own robust mutex (see
// shm_ring_segment.h), so a Push and a Pop never wait for each other; they
// meet only through the slots, `tail` and `free_pos`.
//
// Waiting: a blocked Push or Pop polls for up to 20 microseconds, then
// sleeps on a futex in the segment (no core is kept spinning); it wakes when
// the other side makes progress, at its deadline, and every
// kLivenessInterval to look for dead participants. A producer that finds
// the ring full polls until an eighth of it is free (or the 20 microseconds
// end), so that a full ring is refilled in stretches, not one slot per Pop.
//
// Threading and ownership: one ShmRing object is one participant, used by
// one thread at a time; create one per thread, and open it in the process
// that uses it (after fork(), not before: the participant is recorded with
// its pid). The segment outlives every process until Remove.
#ifndef MOERL_COMMON_TRANSPORT_SHM_RING_H_
#define MOERL_COMMON_TRANSPORT_SHM_RING_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "common/transport/message_ring.h"

namespace boost {
namespace interprocess {
class mapped_region;
}  // namespace interprocess
}  // namespace boost

namespace moerl {
namespace shm_ring_internal {
class RingSegment;
}  // namespace shm_ring_internal

class ShmRing : public MessageRing {
 public:
  friend class ShmRingTestPeer;  // shm_ring_crash_test

  struct CreateOptions {
    // Bytes for messages (rounded up to 64). Each message takes its payload
    // plus a 64-byte slot header, rounded up to 64 bytes.
    uint64_t capacity_bytes = 64 << 20;
    DeliveryMode mode = DeliveryMode::kPlain;
    // End of stream waits for this many producer registrations (0: one).
    uint32_t expected_producers = 0;
    // A 64-bit checksum of every payload (RingChecksum, ring_checksum.h:
    // SIMD, fused with the copy), checked on Pop.
    bool checksum_payloads = true;
    // The process whose life the segment belongs to (the pipeline script);
    // 0: the creating process. Used only to tell a stale segment.
    pid_t owner_pid = 0;
    // If a stale segment of this name exists, remove it and create anew.
    bool reclaim_stale = false;
  };

  // How often a waiting participant checks for dead participants.
  static constexpr absl::Duration kLivenessInterval = absl::Milliseconds(20);

  // "<experiment>.<trial>.<hop>", validated.
  static absl::StatusOr<std::string> SegmentName(absl::string_view experiment,
                                                 absl::string_view trial, absl::string_view hop);
  static absl::Status ValidateName(absl::string_view name);
  // /dev/shm/moerl.<name>
  static std::string SegmentPath(absl::string_view name);

  static absl::Status Create(const std::string& name, const CreateOptions& options);
  static absl::StatusOr<std::unique_ptr<ShmRing>> Open(const std::string& name, RingRole role);
  static absl::Status Remove(const std::string& name);

  ~ShmRing() override;

  absl::Status Push(absl::string_view payload, absl::Duration timeout) override;
  absl::Status TryPush(absl::string_view payload) override;
  absl::Status CloseProducer() override;
  absl::StatusOr<RingMessage> Pop(absl::Duration timeout) override;
  absl::StatusOr<RingMessage> TryPop() override;
  absl::Status Ack(uint64_t ticket) override;
  DeliveryMode delivery_mode() const override;
  RingStats Stats() const override;

  // Pop into `message`, reusing its payload's buffer (no allocation per
  // message once the buffer is large enough). Same status codes as Pop.
  absl::Status PopInto(RingMessage* message, absl::Duration timeout);

  // --- Fast paths (shm_ring_fast.cc). Same status codes as Push / Pop.
  //
  // Zero-copy consumer. PopView takes the oldest message like Pop but
  // copies nothing: view->payload points into the segment (checksum already
  // verified) and stays valid until ReleaseView(*view). In plain mode the
  // message counts as delivered at ReleaseView: a consumer that dies while
  // holding a view has that message delivered again (delivery_count + 1),
  // exactly like a consumer killed while Pop copies out, so nothing taken
  // through a view is lost. In acknowledged mode ReleaseView is the Ack.
  // Views that are held keep their place in the ring (like unacknowledged
  // messages): release them promptly. Several views may be held at once.
  //
  //   ShmRing::MessageView view;
  //   MOERL_RETURN_IF_ERROR(ring->PopView(&view, absl::Seconds(1)));
  //   Consume(view.payload);
  //   MOERL_RETURN_IF_ERROR(ring->ReleaseView(view));
  struct MessageView {
    absl::string_view payload;  // into the segment, until ReleaseView
    uint32_t delivery_count = 0;
    uint64_t ticket = 0;  // names the held slot (and the Ack ticket)
  };
  absl::Status PopView(MessageView* view, absl::Duration timeout);
  absl::Status ReleaseView(const MessageView& view);

  // Zero-copy producer: reserve `bytes` in the ring, write them in place,
  // then commit (the checksum is computed at commit). One reservation at a
  // time per participant. A producer killed before CommitPush leaves an
  // abandoned slot that no consumer ever sees; AbortPush drops it on purpose.
  absl::StatusOr<char*> ReservePush(size_t bytes, absl::Duration timeout);
  absl::Status CommitPush();
  absl::Status AbortPush();

  // Batches for small messages: one lock acquisition and one wake-up for
  // many messages (each message is still journaled on its own, so the crash
  // contract is unchanged per message). PushBatch pushes `payloads` in
  // order; on an error *pushed (if given) says how long a prefix went in.
  absl::Status PushBatch(absl::Span<const absl::string_view> payloads, absl::Duration timeout,
                         size_t* pushed = nullptr);
  // Waits like Pop for one message, then takes up to `max` that are ready,
  // oldest first, into (*messages)[0, n), growing the vector if needed and
  // reusing its payload buffers. Returns n >= 1. In plain mode a consumer
  // killed inside PopBatch after the slots were released loses at most that
  // batch (Pop: at most one message); never duplicates. In acknowledged
  // mode Ack each ticket as usual. A message failing its checksum ends the
  // batch; its DataLoss is returned by the next PopBatch/PopInto call.
  absl::StatusOr<size_t> PopBatch(std::vector<RingMessage>* messages, size_t max,
                                  absl::Duration timeout);

  // Copies of up to `max` queued messages, oldest first, left in the ring
  // (tools/inspect). DataLoss if the segment's bookkeeping is damaged.
  absl::StatusOr<std::vector<RingMessage>> Peek(size_t max) const;
  // True if the owner process and every participant are gone.
  bool Stale() const;
  pid_t owner_pid() const;
  const std::string& name() const { return name_; }

 private:
  ShmRing(std::string name, std::unique_ptr<boost::interprocess::mapped_region> region,
          RingRole role);
  // Payloads up to this size are copied while holding the mutex (one lock
  // per operation); larger ones outside it, so producers and consumers copy
  // in parallel.
  static constexpr uint64_t kInlineCopyBytes = 4096;

  absl::Status PushImpl(absl::string_view payload, absl::Duration timeout);
  absl::Status CheckPush(size_t bytes) const;
  // Locks the producer side, then reserves a slot for `bytes`, waiting until
  // `deadline` (from `timeout`); on success returns with it held.
  absl::StatusOr<uint64_t> ReserveLocked(size_t bytes, absl::Duration timeout, absl::Time* deadline);
  // With the producer side locked and no room: has free_pos moved past what
  // consumers left behind (FreeRoomLocked; once for each free_pos it finds,
  // or when a sweep is due), then fails (try variants, or at the deadline;
  // unlocked) or waits for space and returns with it locked, to try again.
  absl::Status WaitForSpaceLocked(absl::Duration timeout, absl::Time* deadline);
  // With the producer side locked: takes the segment lock to move free_pos
  // past padding and freed slots, and to sweep for dead participants when
  // due. True if either freed room.
  absl::StatusOr<bool> FreeRoomLocked();
  // Locks, then takes the oldest message, waiting like Pop; on success
  // returns with the lock held. With `front` (plain mode, PopBatch): first
  // tries RingSegment::ConsumeFront into it each time round; if that got
  // messages, *front_taken is their number and the position returned means
  // nothing.
  absl::StatusOr<uint64_t> TakeLocked(absl::Duration timeout, RingMessage* front = nullptr,
                                      size_t front_max = 0, size_t* front_taken = nullptr);
  // With the producer side locked and slot `pos` reserved: unlocks, writes
  // `payload`, commits.
  absl::Status FinishPush(uint64_t pos, absl::string_view payload);
  // With the lock held: every 1024th call, looks for dead participants if due.
  void SweepNowAndThenLocked();
  absl::Status CheckPop() const;
  // With the lock held and slot `pos` taken: copies it out, releases it
  // (plain mode) and unlocks.
  absl::Status FinishPop(uint64_t pos, RingMessage* message);
  // Lock the segment, repairing after a dead owner. Lock failures are
  // internal invariant failures of the segment (reported as Status).
  // Also validates the shared bookkeeping (DataLoss if damaged).
  absl::Status Lock() const;
  void Unlock() const;
  // The producers' lock (producer_mutex; shm_ring_segment.h): taken before
  // Lock() when both are needed. Repairs after a dead owner and validates
  // the producer state (DataLoss if damaged).
  absl::Status LockProducer();
  void UnlockProducer();
  // The segment's damage as this ring's DataLoss; UnlockWithDamage unlocks first.
  absl::Status DamageStatus() const;
  absl::Status UnlockWithDamage() const;
  absl::Status UnlockProducerWithDamage();
  // With the producer side locked (for_space) or the segment lock (for a
  // message): sleeps until the other side makes progress or `deadline` (at
  // most kLivenessInterval), sweeping for dead participants when due;
  // returns with the same lock held.
  absl::Status WaitLocked(bool for_space, absl::Time deadline);
  // True if no participant looked for dead ones in the last kLivenessInterval.
  bool SweepDue() const;
  // After a change that may let waiters of the other side proceed.
  void Wake(bool space) const;
  // After moving free_pos (space) or tail: cheaper than Wake when nobody
  // sleeps (waiters that spin watch the position itself).
  void WakeMoved(bool space) const;
  // With the lock held, after a consumer freed space: unlocks, wakes the
  // producers, and the consumers too when that ended the stream.
  void UnlockAfterFreeing() const;

  std::string name_;
  std::unique_ptr<boost::interprocess::mapped_region> region_;
  std::unique_ptr<shm_ring_internal::RingSegment> segment_;
  RingRole role_;
  uint32_t self_ = 0xFFFFFFFFu;  // participant index; none for observers
  pid_t pid_;
  bool producer_locked_ = false;  // this participant holds producer_mutex
  bool producer_closed_ = false;
  uint32_t pops_since_sweep_check_ = 0;
  uint64_t free_room_checked_at_ = ~0ull;  // free_pos at the last FreeRoomLocked
  uint64_t reserved_pos_ = ~0ull;      // ReservePush outstanding: its slot
  size_t reserved_bytes_ = 0;          // and its payload size
  absl::Status pending_data_loss_;     // from PopBatch, for the next call
};

}  // namespace moerl

#endif  // MOERL_COMMON_TRANSPORT_SHM_RING_H_
