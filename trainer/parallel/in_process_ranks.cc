#include "trainer/parallel/in_process_ranks.h"

#include <cstdlib>
#include <exception>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace moerl {

absl::Status RunInProcessRanks(const ParallelDims& dims,
                               const std::function<absl::Status(const ParallelState&)>& body,
                               const ParallelOptions& options) {
  const int world = dims.WorldSize();
  // c10d's flight recorder (one per process) is not safe for several ranks'
  // Gloo groups enqueueing from threads of one process: it crashed in a map
  // insert about once in ten in-process runs. Ranks as threads switch it off
  // (it is read when the first group is created).
  setenv("TORCH_FR_BUFFER_SIZE", "0", /*overwrite=*/1);
  std::shared_ptr<Rendezvous> rendezvous = Rendezvous::InProcess();
  std::vector<absl::Status> results(world);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        absl::StatusOr<ParallelState> state = ParallelState::Create(dims, rank, rendezvous, options);
        results[rank] = state.ok() ? body(*state) : state.status();
      } catch (const std::exception& e) {
        results[rank] = absl::InternalError(e.what());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int rank = 0; rank < world; ++rank) {
    if (!results[rank].ok()) return Annotate(results[rank], absl::StrCat("rank ", rank));
  }
  return absl::OkStatus();
}

}  // namespace moerl
