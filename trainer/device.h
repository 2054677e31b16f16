// Where the trainer's tensors live: the host, or this process's GPU.
//
//   MOERL_ASSIGN_OR_RETURN(at::Device device, TrainerDevice(settings.device, parallel.local_rank()));
//   model->to(device);          // before building the optimizer
//
// `setting` is trainer.device: "cpu"; "cuda" (this build must have CUDA,
// `--config=cuda`, and GPU `local_rank` must be visible); or "auto" (cuda
// when the build has CUDA and a GPU is visible, else cpu), AReaL's way of
// taking the platform's device. A process uses GPU `local_rank`, torchrun's
// LOCAL_RANK or Slurm's SLURM_LOCALID (each rank sees its node's GPUs).
// TrainerDevice also makes that GPU the calling thread's current device, so
// that NCCL and the CUDA caching allocator work on it.
//
// Errors are FailedPrecondition and name the key, the value and why: a
// cuda request on a CPU build, no visible GPU, fewer GPUs than local ranks,
// an unknown value.
//
// Thread-safe.
#ifndef MOERL_TRAINER_DEVICE_H_
#define MOERL_TRAINER_DEVICE_H_

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moerl {

// True when this binary was built with CUDA (`--config=cuda`).
bool CudaBuild();
// GPUs this process sees (CUDA_VISIBLE_DEVICES applies); 0 on a CPU build.
int VisibleGpus();

// The device kind `setting` asks for on this build and machine: kCPU or
// kCUDA, before any rank knows its local rank (it decides NCCL or not).
absl::StatusOr<c10::DeviceType> TrainerDeviceType(absl::string_view setting);

// cpu, or cuda:local_rank made current for the calling thread.
absl::StatusOr<c10::Device> TrainerDevice(absl::string_view setting, int local_rank);

// "cpu" or "cuda:0" (c10's spelling), for logs and errors.
std::string DeviceName(const c10::Device& device);

// For timing and benchmarks; no-ops (0) on the host.
// Waits for the device's queued work.
void SynchronizeDevice(const c10::Device& device);
// The most bytes the caching allocator held in tensors since the last reset.
int64_t PeakDeviceBytes(const c10::Device& device);
void ResetPeakDeviceBytes(const c10::Device& device);

}  // namespace moerl

#endif  // MOERL_TRAINER_DEVICE_H_
