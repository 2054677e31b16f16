// Per-step statistics with AReaL's aggregation kinds (areal-reference.md
// §c.4), and the run's stats.jsonl writer. Torch-free.
//
//   StatsRecorder rec;
//   rec.Stat("ppo_actor/task_reward", sum, count, min, max);  // -> /avg /min /max
//   rec.Denominator("ppo_actor/n_seqs", 8);                    // -> the sum
//   rec.Scalar("ppo_actor/update/grad_norm", 0.7);             // -> mean, and __count
//   StatsLog log(run_dir + "/stats.jsonl");
//   MOERL_RETURN_IF_ERROR(log.Append(step, rec.Flatten()));
//   MOERL_ASSIGN_OR_RETURN(int64_t dropped, log.DropFromStep(resumed_step));  // on a resume
//
// Recording the same name again accumulates (micro-batches, minibatches).
// Thread-compatible.
#ifndef MOERL_TRAINER_STATS_LOG_H_
#define MOERL_TRAINER_STATS_LOG_H_

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moerl {

class StatsRecorder {
 public:
  void Stat(const std::string& name, double sum, double count, double min, double max);
  void Denominator(const std::string& name, double value);
  void Scalar(const std::string& name, double value);
  // name/avg, name/min, name/max for stats (skipped when the count is 0),
  // sums for denominators, means and name__count for scalars.
  std::map<std::string, double> Flatten() const;
  // The avg of a stat or the mean of a scalar; NaN when absent.
  double Value(const std::string& name) const;

  // The accumulated entries, for merging recorders of several ranks: key is
  // "s:" (stat), "d:" (denominator: sum only) or "c:" (scalar) + name.
  struct Entry {
    std::string key;
    double sum = 0, count = 0;
    double min = std::numeric_limits<double>::infinity();
    double max = -std::numeric_limits<double>::infinity();
  };
  std::vector<Entry> Entries() const;
  // Adds `entry` as if its values had been recorded here.
  void Merge(const Entry& entry);

 private:
  struct Acc {
    double sum = 0, count = 0;
    double min = std::numeric_limits<double>::infinity();
    double max = -std::numeric_limits<double>::infinity();
  };
  std::map<std::string, Acc> stats_, scalars_;
  std::map<std::string, double> denominators_;
};

class StatsLog {
 public:
  explicit StatsLog(std::string path) : path_(std::move(path)) {}
  // Appends {"step": step, "wall_time": ..., <values>} as one line (O_APPEND,
  // one write, fsync). Non-finite values are written as null.
  absl::Status Append(int64_t step, const std::map<std::string, double>& values) const;
  // On resume from a checkpoint with `step` steps done: removes the lines of
  // steps >= `step` (they are trained again and appended again) and any line
  // that does not parse (torn by a kill). Rewrites the file atomically
  // (temporary, fsync, rename); a missing file is fine. Returns the number
  // of lines removed.
  absl::StatusOr<int64_t> DropFromStep(int64_t step) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_STATS_LOG_H_
