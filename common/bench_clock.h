// Clocks for benchmarks that time their peers in the same run.
//
//   const double wall0 = WallSeconds(), cpu0 = ProcessCpuSeconds();
//   Work();
//   const double wall = WallSeconds() - wall0, cpu = ProcessCpuSeconds() - cpu0;
//
// ProcessCpuSeconds counts the CPU time of every thread of this process: with
// one thread on a shared machine it measures this run's own work, not the
// time other processes held the core. Stateless; safe from any thread.
#ifndef MOERL_COMMON_BENCH_CLOCK_H_
#define MOERL_COMMON_BENCH_CLOCK_H_

#include <time.h>

#include <chrono>

namespace moerl {

inline double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace moerl

#endif  // MOERL_COMMON_BENCH_CLOCK_H_
