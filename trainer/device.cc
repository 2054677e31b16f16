#include "trainer/device.h"

#include <ATen/Context.h>
#include <ATen/DeviceAccelerator.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace moerl {

bool CudaBuild() {
#ifdef MOERL_CUDA_BUILD
  return true;
#else
  return false;
#endif
}

int VisibleGpus() {
  if (!CudaBuild() || !at::globalContext().hasCUDA()) return 0;
  return static_cast<int>(at::detail::getCUDAHooks().deviceCount());
}

namespace {

std::string VisibleDevicesNote() {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  return visible == nullptr ? std::string(" (CUDA_VISIBLE_DEVICES is unset)")
                            : absl::StrCat(" (CUDA_VISIBLE_DEVICES=\"", visible, "\")");
}

}  // namespace

absl::StatusOr<c10::DeviceType> TrainerDeviceType(absl::string_view setting) {
  if (setting == "cpu") return c10::DeviceType::CPU;
  if (setting == "auto") return VisibleGpus() > 0 ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  if (setting != "cuda") {
    return absl::FailedPreconditionError(
        absl::StrCat("trainer.device=\"", setting, "\" is not a device; use auto, cpu or cuda"));
  }
  if (!CudaBuild()) {
    return absl::FailedPreconditionError(
        "trainer.device=cuda, but this binary was built without CUDA: build it with `bazel build --config=cuda` "
        "(or set trainer.device=cpu)");
  }
  if (VisibleGpus() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("trainer.device=cuda, but no GPU is visible to this process", VisibleDevicesNote(),
                     "; set trainer.device=cpu to train on the host"));
  }
  return c10::DeviceType::CUDA;
}

absl::StatusOr<c10::Device> TrainerDevice(absl::string_view setting, int local_rank) {
  auto type = TrainerDeviceType(setting);
  if (!type.ok()) return type.status();
  if (*type == c10::DeviceType::CPU) return c10::Device(c10::DeviceType::CPU);
  const int gpus = VisibleGpus();
  if (local_rank < 0 || local_rank >= gpus) {
    return absl::FailedPreconditionError(absl::StrCat(
        "trainer.device=", setting, ": this process has local rank ", local_rank, " and so uses GPU ", local_rank,
        ", but it sees ", gpus, " GPU(s)", VisibleDevicesNote(),
        "; start at most as many ranks per node as it has GPUs, each seeing all of them"));
  }
  const c10::Device device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(local_rank));
  c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->setDevice(device);
  return device;
}

std::string DeviceName(const c10::Device& device) { return device.str(); }

void SynchronizeDevice(const c10::Device& device) {
  if (device.is_cuda()) at::accelerator::synchronizeDevice(device.index());
}

int64_t PeakDeviceBytes(const c10::Device& device) {
  if (!device.is_cuda()) return 0;
  const auto stats = at::accelerator::getDeviceStats(device.index());
  return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
}

void ResetPeakDeviceBytes(const c10::Device& device) {
  if (device.is_cuda()) at::accelerator::resetPeakStats(device.index());
}

}  // namespace moerl
