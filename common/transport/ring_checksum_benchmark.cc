// Copy + checksum kernels, one thread, against memcpy in the same run: what
// decides the ring's per-payload checksum (docs/performance.md, Transport).
//
//   bazel run //common/transport:ring_checksum_benchmark [-- --total_mib=256 --repeats=5]
//
// "producer": the source is one fixed message buffer, the destination
// cycles through --span_mib (like ring slots); "consumer": the reverse.
// "in place": checksum only, over data cycling through the span.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "common/transport/crc32c.h"
#include "common/transport/ring_checksum.h"

ABSL_FLAG(int, total_mib, 256, "bytes per measurement, in MiB");
ABSL_FLAG(int, repeats, 5, "best of this many runs");
ABSL_FLAG(int, span_mib, 8, "span the ring side cycles through (the ring's capacity), in MiB");

namespace moerl {
namespace {

using CopyFn = std::function<uint64_t(void* dst, const void* src, size_t size)>;

// This thread's CPU time: on a shared machine, time sliced away to other
// processes is not the kernel's (cache pollution by them still is).
double ThreadCpuSeconds() {
  timespec ts;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum class Side { kProducer, kConsumer, kInPlace };

double Measure(Side side, size_t size, const CopyFn& fn) {
  const size_t span = std::max<size_t>(static_cast<size_t>(absl::GetFlag(FLAGS_span_mib)) << 20, size);
  const size_t stride = (size + 63) & ~size_t{63};
  const uint64_t total = static_cast<uint64_t>(absl::GetFlag(FLAGS_total_mib)) << 20;
  const uint64_t n = std::max<uint64_t>(total / size, 16);
  std::vector<char> ring(span + 64), fixed(size + 64);
  for (size_t i = 0; i < ring.size(); ++i) ring[i] = static_cast<char>(i * 131);
  for (size_t i = 0; i < fixed.size(); ++i) fixed[i] = static_cast<char>(i * 7);
  double best = 1e30;
  uint64_t sink = 0;
  for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
    size_t offset = 0;
    const double start = ThreadCpuSeconds();
    for (uint64_t i = 0; i < n; ++i) {
      if (offset + size > span) offset = 0;
      switch (side) {
        case Side::kProducer:
          sink += fn(ring.data() + offset, fixed.data(), size);
          break;
        case Side::kConsumer:
          sink += fn(fixed.data(), ring.data() + offset, size);
          break;
        case Side::kInPlace:
          sink += fn(nullptr, ring.data() + offset, size);
          break;
      }
      offset += stride;
    }
    best = std::min(best, ThreadCpuSeconds() - start);
  }
  asm volatile("" : : "r"(sink), "r"(ring.data()), "r"(fixed.data()) : "memory");
  return static_cast<double>(n) * size / best / 1e9;
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace moerl;
  namespace rc = ring_checksum_internal;
  double load[3] = {0, 0, 0};
  ::getloadavg(load, 3);
  std::printf("copy+checksum kernels, GB/s of thread CPU time (best of %d), load average %.1f %.1f %.1f, ring checksum kernel: %s\n",
              absl::GetFlag(FLAGS_repeats), load[0], load[1], load[2], rc::KernelName(rc::BestKernel()));
  struct Kernel {
    const char* name;
    CopyFn copy;
    bool in_place;
  };
  std::vector<Kernel> kernels = {
      {"memcpy", [](void* d, const void* s, size_t n) { std::memcpy(d, s, n); return uint64_t{0}; }, false},
      {"crc32c copy (memcpy 3K, crc)", [](void* d, const void* s, size_t n) { return uint64_t{Crc32cCopy(d, s, n)}; },
       false},
      {"crc32c copy fused (3 streams)",
       [](void* d, const void* s, size_t n) { return uint64_t{crc32c_internal::CopyInterleaved(d, s, n)}; }, false},
  };
  for (rc::Kernel k : {rc::Kernel::kScalar, rc::Kernel::kSse2, rc::Kernel::kAvx2}) {
    if (!rc::KernelAvailable(k)) continue;
    kernels.push_back({nullptr, [k](void* d, const void* s, size_t n) { return rc::Checksum(k, d, s, n); }, false});
  }
  for (rc::Kernel k : {rc::Kernel::kSse2, rc::Kernel::kAvx2}) {
    if (!rc::KernelAvailable(k)) continue;
    kernels.push_back({k == rc::Kernel::kSse2 ? "ring checksum memcpy 4K+sse2" : "ring checksum memcpy 4K+avx2",
                       [k](void* d, const void* s, size_t n) { return rc::ChecksumBlockCopy(k, d, s, n); }, false});
  }
  std::vector<Kernel> in_place = {
      {"crc32c", [](void*, const void* s, size_t n) { return uint64_t{Crc32cExtend(0, s, n)}; }, true},
      {"crc32c pclmul folding", [](void*, const void* s, size_t n) { return uint64_t{Crc32cExtendUncached(0, s, n)}; },
       true},
  };
  for (rc::Kernel k : {rc::Kernel::kScalar, rc::Kernel::kSse2, rc::Kernel::kAvx2}) {
    if (!rc::KernelAvailable(k)) continue;
    in_place.push_back({nullptr, [k](void*, const void* s, size_t n) { return rc::Checksum(k, nullptr, s, n); }, true});
  }
  std::printf("%-34s %10s %10s %10s %10s\n", "kernel / side", "64 B", "4 KiB", "64 KiB", "1 MiB");
  const size_t sizes[] = {64, 4096, 65536, size_t{1} << 20};
  auto row = [&](const std::string& name, Side side, const CopyFn& fn) {
    std::printf("%-34s", name.c_str());
    for (size_t size : sizes) std::printf(" %10.2f", Measure(side, size, fn));
    std::printf("\n");
    std::fflush(stdout);
  };
  for (Side side : {Side::kProducer, Side::kConsumer}) {
    std::printf("%s side (%s)\n", side == Side::kProducer ? "producer" : "consumer",
                side == Side::kProducer ? "fixed source -> cycling ring" : "cycling ring -> fixed destination");
    size_t ring_kernel = 0;
    for (const Kernel& k : kernels) {
      std::string name = k.name != nullptr ? k.name : "";
      if (k.name == nullptr) {
        static const rc::Kernel order[] = {rc::Kernel::kScalar, rc::Kernel::kSse2, rc::Kernel::kAvx2};
        while (!rc::KernelAvailable(order[ring_kernel])) ++ring_kernel;
        name = std::string("ring checksum copy ") + rc::KernelName(order[ring_kernel++]);
      }
      row("  " + name, side, k.copy);
    }
  }
  std::printf("in place (checksum only, cycling ring)\n");
  size_t ring_kernel = 0;
  for (const Kernel& k : in_place) {
    std::string name = k.name != nullptr ? k.name : "";
    if (k.name == nullptr) {
      static const rc::Kernel order[] = {rc::Kernel::kScalar, rc::Kernel::kSse2, rc::Kernel::kAvx2};
      while (!rc::KernelAvailable(order[ring_kernel])) ++ring_kernel;
      name = std::string("ring checksum ") + rc::KernelName(order[ring_kernel++]);
    }
    row("  " + name, Side::kInPlace, k.copy);
  }
  return 0;
}
