// Internal to trainer/parallel: makes c10d backends for one group. The only
// header of ours that includes c10d; included by process_groups.cc and the
// backend files beside it.
#ifndef MOERL_TRAINER_PARALLEL_C10D_BACKENDS_H_
#define MOERL_TRAINER_PARALLEL_C10D_BACKENDS_H_

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <string>

namespace moerl {
namespace c10d_backends {

// Gloo over TCP bound to `hostname` (or the interface in GLOO_SOCKET_IFNAME).
// Blocks until every member connects; throws on timeout.
c10::intrusive_ptr<c10d::Backend> CreateGloo(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                             std::chrono::milliseconds timeout, const std::string& hostname);

// True in --config=cuda builds.
bool NcclAvailable();
// NCCL for device tensors; only callable when NcclAvailable().
c10::intrusive_ptr<c10d::Backend> CreateNccl(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                             std::chrono::milliseconds timeout);

}  // namespace c10d_backends
}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_C10D_BACKENDS_H_
