// NCCL for device tensors; compiled only under --config=cuda (the BUILD file
// picks nccl_unavailable.cc otherwise).
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "trainer/parallel/c10d_backends.h"

namespace moerl {
namespace c10d_backends {

bool NcclAvailable() { return true; }

c10::intrusive_ptr<c10d::Backend> CreateNccl(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                             std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
}

}  // namespace c10d_backends
}  // namespace moerl
