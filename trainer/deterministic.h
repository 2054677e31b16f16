// actor.megatron.use_deterministic_algorithms: what the trainer sets so that
// two runs of one layout on the same machine give bit-identical losses,
// gradients and weights (Megatron's --deterministic-mode, AReaL's
// megatron_utils/deterministic.py).
//
//   MOERL_RETURN_IF_ERROR(SetDeterministicEnvironment(ProcessEnvironment(), SetEnv));  // before any group
//   EnableDeterministicAlgorithms();
//
// - NCCL_ALGO=Ring unless it is set to an order-fixed algorithm (Ring,
//   CollnetDirect, CollnetChain, ^NVLS); Tree is rejected (its intra-node
//   chain order is not fixed). CUBLAS_WORKSPACE_CONFIG=:4096:8 unless it is
//   :4096:8 or :16:8. Both are read when NCCL and cuBLAS initialise, so they
//   are set before the process groups are built. Harmless on CPU.
// - at::globalContext().setDeterministicAlgorithms(true, warn_only=false):
//   torch picks its deterministic kernels (e.g. a sorted 1-D scatter_add on
//   CUDA) and throws, naming the op, where it has none.
// The trainer's own orders are fixed whatever the option: the MoE combine
// is index_add in token order (no scatter_add atomics), the all-to-all
// chunks go [source rank][local expert] and back, reduce-scatter sums in
// member order, gradient buckets follow model order (docs/parallel.md,
// "Determinism").
//
// Process-wide (environment variables and torch's global context): call from
// the main thread before other threads start.
#ifndef MOERL_TRAINER_DETERMINISTIC_H_
#define MOERL_TRAINER_DETERMINISTIC_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "trainer/parallel/process_groups.h"

namespace moerl {

// Sets a variable (setenv with overwrite).
using EnvSetter = std::function<void(const std::string& name, const std::string& value)>;
EnvSetter ProcessEnvironmentSetter();

// NCCL_ALGO and CUBLAS_WORKSPACE_CONFIG as above. InvalidArgument names the
// variable, its value and the accepted ones.
absl::Status SetDeterministicEnvironment(const EnvLookup& env, const EnvSetter& set);

// torch's deterministic algorithms on (or back off).
void EnableDeterministicAlgorithms(bool on = true);

}  // namespace moerl

#endif  // MOERL_TRAINER_DETERMINISTIC_H_
