// Test support: the ranks of a layout as threads of this process, meeting at
// an in-memory c10d HashStore, each with its own ParallelState and Gloo
// communicators over loopback. No launcher, no ports to choose.
//
//   std::vector<float> loss(2);
//   MOERL_RETURN_IF_ERROR(RunInProcessRanks(dims, [&](const ParallelState& state) {
//     loss[state.rank()] = ...;   // each rank writes only its own slot
//     return absl::OkStatus();
//   }));
//
// Returns the first rank's error (by rank) after every thread has finished;
// a rank that throws is reported as Internal with the exception text. A rank
// that fails while others wait in a collective makes them fail with the
// group timeout, so tests pass a short one in `options`.
#ifndef MOERL_TRAINER_PARALLEL_IN_PROCESS_RANKS_H_
#define MOERL_TRAINER_PARALLEL_IN_PROCESS_RANKS_H_

#include <functional>

#include "absl/status/status.h"
#include "common/alloc_mode/alloc_mode.h"
#include "trainer/parallel/parallel_state.h"

namespace moerl {

absl::Status RunInProcessRanks(const ParallelDims& dims,
                               const std::function<absl::Status(const ParallelState&)>& body,
                               const ParallelOptions& options = {});

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_IN_PROCESS_RANKS_H_
