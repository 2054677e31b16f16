// CPU builds: no NCCL. ProcessGroup::Create refuses use_nccl before calling
// CreateNccl.
#include "common/logging.h"
#include "trainer/parallel/c10d_backends.h"

namespace moerl {
namespace c10d_backends {

bool NcclAvailable() { return false; }

c10::intrusive_ptr<c10d::Backend> CreateNccl(const c10::intrusive_ptr<c10d::Store>&, int, int,
                                             std::chrono::milliseconds) {
  MOERL_CHECK(false) << "NCCL requested in a build without CUDA";
  return {};
}

}  // namespace c10d_backends
}  // namespace moerl
