// Built only under --config=cuda: proves that our code compiles against the
// CUDA runtime, NCCL and torch's c10d NCCL backend, and links against the
// torch wheel's CUDA libraries. On a GPU machine it reports the devices and
// the NCCL version; here (no GPU) it is only built.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdio>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

int main() {
  int nccl_version = 0;
  if (ncclGetVersion(&nccl_version) != ncclSuccess) {
    std::fprintf(stderr, "cuda_nccl_link: ncclGetVersion failed\n");
    return 1;
  }
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  auto options = c10d::ProcessGroupNCCL::Options::create();
  std::printf("nccl %d, cuda devices %d (%s), c10d NCCL timeout %lld ms\n", nccl_version,
              devices, cudaGetErrorString(err),
              static_cast<long long>(options->timeout.count()));
  return err == cudaSuccess && devices > 0 ? 0 : 1;
}
