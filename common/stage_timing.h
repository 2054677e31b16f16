// StageTiming: where one pipeline stage's wall time goes, so that the run's
// report can say how much of it was spent outside compute
// (docs/performance.md, "Where each stage's time goes").
//
//   StageTiming timing("scorer");
//   StageTimingReporter reporter(&timing, absl::Seconds(30));  // logs it every 30 s and at exit
//   {
//     ScopedStageTimer t(&timing, TimeBucket::kTransport);
//     MOERL_RETURN_IF_ERROR(ring.Ack(ticket));
//   }
//   timing.Count("completion_tokens", 40);
//
// Buckets (seconds, summed over every thread that adds to them):
//   wait_input   blocked for input: an empty ring, a generation not yet back,
//                the scheduler with nothing to run
//   wait_output  blocked on output: a full ring
//   transport    moving data: ring copies and acknowledgements, protobuf
//                and JSON encoding and decoding, batch file writes
//   compute      the stage's own work, where it is timed explicitly (the
//                server's forward steps, the scorer's verdicts)
// Wall time runs from construction. A bucket a stage does not time stays 0;
// the report reads what a single-threaded stage does not attribute as its
// compute (docs/pipeline.md, "Stage timing").
//
// ToJson gives one line:
//   {"stage":"scorer","wall_s":12.5,"wait_input_s":11.9,"wait_output_s":0,
//    "transport_s":0.21,"compute_s":0.08,"counts":{"groups":120}}
//
// Threading: Add, Count and ToJson are thread-safe; adding is a relaxed
// atomic add (counts take a mutex: call them per message, not per token).
#ifndef MOERL_COMMON_STAGE_TIMING_H_
#define MOERL_COMMON_STAGE_TIMING_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace moerl {

enum class TimeBucket { kWaitInput = 0, kWaitOutput = 1, kTransport = 2, kCompute = 3 };
inline constexpr int kTimeBuckets = 4;

// How often the pipeline's stages log their timing.
inline constexpr absl::Duration kStageTimingPeriod = absl::Seconds(30);

class StageTiming {
 public:
  using Clock = std::function<absl::Time()>;

  // `clock` is for tests; the default is absl::Now.
  explicit StageTiming(std::string stage, Clock clock = nullptr);
  StageTiming(const StageTiming&) = delete;
  StageTiming& operator=(const StageTiming&) = delete;

  absl::Time Now() const { return clock_ ? clock_() : absl::Now(); }
  void Add(TimeBucket bucket, absl::Duration d) {
    buckets_ns_[static_cast<int>(bucket)].fetch_add(absl::ToInt64Nanoseconds(d),
                                                    std::memory_order_relaxed);
  }
  void Count(const std::string& name, int64_t n);

  absl::Duration Total(TimeBucket bucket) const {
    return absl::Nanoseconds(buckets_ns_[static_cast<int>(bucket)].load(std::memory_order_relaxed));
  }
  const std::string& stage() const { return stage_; }
  std::string ToJson() const;

 private:
  const std::string stage_;
  const Clock clock_;
  const absl::Time start_;
  std::atomic<int64_t> buckets_ns_[kTimeBuckets] = {};
  mutable absl::Mutex mu_;
  std::map<std::string, int64_t> counts_ ABSL_GUARDED_BY(mu_);
};

// Adds the time from construction to destruction to one bucket. A null
// timing does nothing (stages run untimed in unit tests).
class ScopedStageTimer {
 public:
  ScopedStageTimer(StageTiming* timing, TimeBucket bucket)
      : timing_(timing), bucket_(bucket), start_(timing ? timing->Now() : absl::InfinitePast()) {}
  ~ScopedStageTimer() {
    if (timing_ != nullptr) timing_->Add(bucket_, timing_->Now() - start_);
  }
  ScopedStageTimer(const ScopedStageTimer&) = delete;
  ScopedStageTimer& operator=(const ScopedStageTimer&) = delete;

 private:
  StageTiming* timing_;
  TimeBucket bucket_;
  absl::Time start_;
};

// Logs `stage_timing <json>` (common/logging.h, to stderr: the stage's log)
// every `period` and once more when destroyed. The pipeline's report reads
// the last such line of each log. Owns one thread that sleeps between lines.
class StageTimingReporter {
 public:
  StageTimingReporter(const StageTiming* timing, absl::Duration period);
  ~StageTimingReporter();
  StageTimingReporter(const StageTimingReporter&) = delete;
  StageTimingReporter& operator=(const StageTimingReporter&) = delete;

 private:
  const StageTiming* timing_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace moerl

#endif  // MOERL_COMMON_STAGE_TIMING_H_
