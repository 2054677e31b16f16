// StatAccumulator: a {sum, count, min, max} of one logged statistic, the unit
// in which the loss functions report what AReaL's stats_tracker records, so
// that callers can merge micro-batches and ranks before exporting.
//
// AReaL's export of a stat `k` over its mask is k/avg = sum / count, k/min,
// k/max (absent when count is 0); of a denominator `d` (a bool mask) the
// SUM, which here is `sum` (and `count` is the number of entries looked at);
// of a scalar `s` the mean of the recorded values, which is sum / count when
// each micro-batch Adds its value once.
//
//   StatAccumulator acc;
//   acc.Add(0.5);
//   acc.Add(1.5);
//   other.Merge(acc);   // across micro-batches or ranks
//   double avg = acc.Mean();   // 1.0
//
// A plain value type; no torch, no threads.
#ifndef MOERL_TRAINER_STATS_ACCUMULATOR_H_
#define MOERL_TRAINER_STATS_ACCUMULATOR_H_

#include <algorithm>
#include <limits>

namespace moerl {

struct StatAccumulator {
  double sum = 0.0;
  double count = 0.0;
  // +inf / -inf while empty, as AReaL's masked min/max before it drops them.
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();

  // One value of weight 1.
  void Add(double value) { AddMany(value, 1.0, value, value); }

  // `n` values summing to `value_sum`, with their extremes.
  void AddMany(double value_sum, double n, double value_min, double value_max) {
    if (n <= 0) return;
    sum += value_sum;
    count += n;
    min = std::min(min, value_min);
    max = std::max(max, value_max);
  }

  void Merge(const StatAccumulator& other) {
    sum += other.sum;
    count += other.count;
    min = std::min(min, other.min);
    max = std::max(max, other.max);
  }

  bool empty() const { return count <= 0; }
  // NaN when empty (AReaL leaves the key out then).
  double Mean() const {
    return count > 0 ? sum / count : std::numeric_limits<double>::quiet_NaN();
  }
};

}  // namespace moerl

#endif  // MOERL_TRAINER_STATS_ACCUMULATOR_H_
