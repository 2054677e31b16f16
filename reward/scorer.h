// TrajectoryScorer: Trajectory messages from a ring -> scored, grouped
// TrajectoryBatch files, as the reward_scorer binary runs it.
//
//   ScorerConfig config;
//   config.n_samples = 4;      // gconfig.n_samples
//   config.batch_size = 256;   // train_dataset.batch_size, in groups
//   DirectoryBatchSink sink(run_dir + "/batches");
//   TrajectoryScorer scorer(config, &sink);
//   ScorerReport report;
//   MOERL_RETURN_IF_ERROR(scorer.Run(*ring, &report, should_stop));
//
// Each trajectory gets reward / reward_reason / scored from ScoreCompletion
// (output_text against gold_answer, with config.unit_rule). A group is complete when all
// n_samples sample indices of its group_id have arrived; complete groups are
// written batch_size at a time, each group contiguous and ordered by
// sample_index.
//
// Delivery: in acknowledged mode a message is acknowledged only after the
// batch holding it is written, so a scorer killed at any point loses nothing:
// its unacknowledged messages go to another scorer (or to it, restarted).
// A kill between writing a batch and acknowledging it makes those groups
// appear again in a later batch (at-least-once). A redelivered duplicate of a
// trajectory still pending here is dropped and counted.
//
// Several scorers may share one ring. With `message_kind = kGroup` (each ring
// message is a TrajectoryBatch holding one whole group) every group is
// complete where it lands. With per-trajectory messages a group whose members
// went to different scorers cannot be completed by either: run one scorer per
// ring, or have the bridge publish groups.
//
// End: when every producer has closed and the ring has nothing queued, the
// scorer writes its complete groups as a last (possibly smaller) batch,
// acknowledges and counts the incomplete groups it still holds (they can never
// complete), and returns once the ring reports end of stream.
//
// Threading: one scorer per thread; the ring and sink are borrowed.
#ifndef MOERL_REWARD_SCORER_H_
#define MOERL_REWARD_SCORER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/proto/trajectory.pb.h"
#include "common/stage_timing.h"
#include "common/transport/message_ring.h"
#include "reward/answer_value.h"

namespace moerl {

enum class MessageKind { kTrajectory, kGroup };

struct ScorerConfig {
  uint32_t n_samples = 1;   // gconfig.n_samples
  uint32_t batch_size = 1;  // train_dataset.batch_size (groups per batch)
  MessageKind message_kind = MessageKind::kTrajectory;
  // reward.lenient_units: kMathVerify (AReaL's verdicts) unless set; see
  // reward/answer.h for where the two differ.
  UnitRule unit_rule = UnitRule::kMathVerify;
  // How long one Pop waits before checking for the end and should_stop.
  absl::Duration poll_interval = absl::Milliseconds(200);
  // The groups of a batch in group-id order rather than the order they were
  // completed in (which depends on timing): with a fixed set of groups per
  // batch (rollout.max_head_offpolicyness=0), batches are then reproducible.
  bool sort_groups = false;

  absl::Status Validate() const;
};

struct ScorerReport {
  int64_t trajectories_scored = 0;
  std::map<std::string, int64_t> reasons;  // reward_reason -> count
  int64_t duplicates_dropped = 0;
  int64_t incomplete_groups_dropped = 0;
  // Ring messages that did not parse or broke the group rules: each is logged
  // with its ticket and reason, then acknowledged so that it cannot block the
  // ring on every restart (a dead letter, not a silent loss).
  int64_t malformed_dropped = 0;
  int64_t groups_written = 0;
  int64_t batches_written = 0;
  std::vector<std::string> batch_locations;
};

// Where batches go. Returns where the batch was written (for the report).
class BatchSink {
 public:
  virtual ~BatchSink() = default;
  virtual absl::StatusOr<std::string> WriteBatch(proto::TrajectoryBatch& batch) = 0;
};

// Writes <dir>/<NNNNNN>.rec, one TrajectoryBatch per record file
// (common/transport/record_io.h). The number is claimed atomically (link(2) of a
// finished temporary file), so several scorers writing into one directory
// number their batches 0, 1, 2, ... in the order they completed them, and
// batch_index in the file equals the number.
//
// Restarts are cheap: the first write lists the directory once and starts
// after the largest number there, so a scorer restarted into a directory of
// N batches makes one link attempt (and one fsync'd file), not N. Losing a
// race to another scorer (EEXIST) lists the directory again and jumps past
// the new largest number.
//
// Temporaries are named `.batch-<pid>-<n>@<host>@` (RecordWriter adds its own
// `.tmp.*` suffix while writing). The first listing removes every one left by
// a writer on this host whose pid is no longer alive (kill(pid, 0) gives
// ESRCH); ones of live pids, and of other hosts sharing the directory, stay.
// A recycled pid only keeps a stale file around; it never removes a live one.
// Names without `@<host>@` (written before hosts were recorded) count as this
// host's.
class DirectoryBatchSink : public BatchSink {
 public:
  // What the sink did to the directory: the seam tests count work through.
  struct Stats {
    int64_t link_attempts = 0;
    int64_t directory_listings = 0;
    int64_t stale_temporaries_removed = 0;
  };

  explicit DirectoryBatchSink(std::string dir) : dir_(std::move(dir)) {}
  absl::StatusOr<std::string> WriteBatch(proto::TrajectoryBatch& batch) override;
  const Stats& stats() const { return stats_; }

 private:
  // Sets next_index_ past the largest <NNNNNN>.rec; on the first call also
  // removes dead writers' temporaries.
  absl::Status ListDirectory();

  std::string dir_;
  uint64_t next_index_ = 0;
  bool listed_ = false;
  Stats stats_;
};

class TrajectoryScorer {
 public:
  // `timing` (optional, borrowed) gets the parse and batch-write time as
  // transport and the verdicts as compute (docs/pipeline.md, "Stage timing").
  TrajectoryScorer(const ScorerConfig& config, BatchSink* sink, StageTiming* timing = nullptr)
      : config_(config), sink_(sink), timing_(timing) {}

  // Consumes until end of stream (or should_stop). Bad payloads and groups
  // are InvalidArgument errors naming the group and sample.
  absl::Status Run(MessageRing& ring, ScorerReport* report,
                   const std::function<bool()>& should_stop = nullptr);

 private:
  struct PendingGroup {
    std::map<uint32_t, proto::Trajectory> samples;  // by sample_index
    std::vector<uint64_t> tickets;
  };

  absl::Status AddTrajectory(MessageRing& ring, proto::Trajectory trajectory, uint64_t ticket,
                             ScorerReport* report);
  absl::Status HandleMessage(MessageRing& ring, const RingMessage& message, ScorerReport* report);
  absl::Status WriteReadyBatches(MessageRing& ring, bool flush, ScorerReport* report);

  ScorerConfig config_;
  BatchSink* sink_;
  StageTiming* timing_;
  std::map<std::string, PendingGroup> pending_;  // by group_id
  std::vector<PendingGroup> ready_;               // complete, in completion order
};

}  // namespace moerl

#endif  // MOERL_REWARD_SCORER_H_
