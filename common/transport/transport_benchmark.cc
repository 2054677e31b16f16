// Transport benchmark: ShmRing against its peers, measured in the same run.
//
//   bazel run //common/transport:transport_benchmark            (~2 minutes)
//   bazel run //common/transport:transport_benchmark -- --repeats=1 --total_mib=64   (quicker)
//
// One producer and one consumer process per message size (64 B, 4 KiB,
// 64 KiB, 1 MiB), moving the same bytes through: memcpy (one thread, the
// physical limit of one copy), a Unix pipe, Boost.Interprocess
// message_queue, and ShmRing (plain mode, CRC32C on and off; one message
// per call, and the fast paths: PushBatch/PopBatch of 64 at 64 B and 4 KiB,
// the zero-copy PopView consumer at 64 KiB and 1 MiB). Then 4
// producers x 4 consumers on one ShmRing. Prints throughput, messages/s and
// the ratios the transport issue sets as goals.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <boost/interprocess/ipc/message_queue.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/transport/shm_ring.h"

ABSL_FLAG(int, repeats, 3, "each figure is the best of this many runs (the machine is shared)");
ABSL_FLAG(int, total_mib, 256, "bytes moved per measurement for the large sizes, in MiB");
ABSL_FLAG(int, small_messages, 1000000, "messages per measurement at 64 B");
ABSL_FLAG(int, ring_mib, 8, "ShmRing capacity, and the span memcpy cycles its destination through, in MiB");

namespace moerl {
namespace {

namespace bip = boost::interprocess;

struct Result {
  double seconds = 0;
  uint64_t messages = 0;
  uint64_t bytes = 0;
  double gbps() const { return bytes / seconds / 1e9; }
  double mps() const { return messages / seconds; }
};

// Runs `producer` and `consumer` in child processes, started together;
// returns the wall time until both exit.
double RunPair(const std::vector<std::function<void()>>& producers,
               const std::vector<std::function<void()>>& consumers) {
  int go[2];
  if (::pipe(go) != 0) std::abort();
  std::vector<pid_t> pids;
  auto spawn = [&](const std::function<void()>& body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(go[1]);
      char c;
      if (::read(go[0], &c, 1) != 0) _exit(9);  // wait for the start (EOF)
      body();
      _exit(0);
    }
    pids.push_back(pid);
  };
  for (const auto& c : consumers) spawn(c);
  for (const auto& p : producers) spawn(p);
  ::close(go[0]);
  ::usleep(20000);
  const absl::Time start = absl::Now();
  ::close(go[1]);
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "benchmark child %d failed (status %d)\n", pid, status);
      std::exit(1);
    }
  }
  return absl::ToDoubleSeconds(absl::Now() - start);
}

Result Memcpy(size_t size, uint64_t n, size_t ring_bytes) {
  // Destinations cycle through as many bytes as the ring has, so that the
  // copies see the same caches as ring slots do.
  const size_t span = std::max<size_t>(ring_bytes, size);
  std::vector<char> src(size, 'x'), dst(span);
  size_t offset = 0;
  const absl::Time start = absl::Now();
  for (uint64_t i = 0; i < n; ++i) {
    if (offset + size > span) offset = 0;
    std::memcpy(dst.data() + offset, src.data(), size);
    offset += (size + 63) & ~size_t{63};
  }
  asm volatile("" : : "r"(dst.data()) : "memory");
  return {absl::ToDoubleSeconds(absl::Now() - start), n, n * size};
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

Result Pipe(size_t size, uint64_t n) {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  const double seconds = RunPair(
      {[&] {
        ::close(fds[0]);
        std::string message(4 + size, 'x');
        const uint32_t len = static_cast<uint32_t>(size);
        std::memcpy(&message[0], &len, 4);
        for (uint64_t i = 0; i < n; ++i) {
          if (!WriteAll(fds[1], message.data(), message.size())) _exit(2);
        }
      }},
      {[&] {
        ::close(fds[1]);
        std::string buffer(size, '\0');
        for (uint64_t i = 0; i < n; ++i) {
          uint32_t len = 0;
          if (!ReadAll(fds[0], reinterpret_cast<char*>(&len), 4) || len != size) _exit(2);
          if (!ReadAll(fds[0], &buffer[0], len)) _exit(3);
        }
      }});
  ::close(fds[0]);
  ::close(fds[1]);
  return {seconds, n, n * size};
}

Result MessageQueue(size_t size, uint64_t n) {
  const std::string name = absl::StrCat("moerl_bench_mq_", ::getpid());
  bip::message_queue::remove(name.c_str());
  const size_t slots = std::clamp<size_t>((64u << 20) / size, 16, 65536);
  { bip::message_queue mq(bip::create_only, name.c_str(), slots, size); }
  const double seconds = RunPair(
      {[&] {
        bip::message_queue mq(bip::open_only, name.c_str());
        std::string message(size, 'x');
        for (uint64_t i = 0; i < n; ++i) mq.send(message.data(), size, 0);
      }},
      {[&] {
        bip::message_queue mq(bip::open_only, name.c_str());
        std::string buffer(size, '\0');
        size_t got = 0;
        unsigned priority = 0;
        for (uint64_t i = 0; i < n; ++i) {
          mq.receive(&buffer[0], size, got, priority);
          if (got != size) _exit(2);
        }
      }});
  bip::message_queue::remove(name.c_str());
  return {seconds, n, n * size};
}

// How the ring is driven: one message per call (Push / PopInto), batches
// (PushBatch / PopBatch of kBatch), or the zero-copy consumer (Push /
// PopView + ReleaseView: the consumer reads the payload in place).
enum class Api { kSingle, kBatch, kView };
constexpr size_t kBatch = 64;

Result Ring(size_t size, uint64_t n, int producers, int consumers, bool checksum, size_t ring_bytes,
            Api api = Api::kSingle) {
  const std::string name = absl::StrCat("bench", ::getpid(), ".ring.", producers, "x", consumers);
  ShmRing::Remove(name).IgnoreError();
  const absl::Status created =
      ShmRing::Create(name, {.capacity_bytes = ring_bytes, .checksum_payloads = checksum});
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.ToString().c_str());
    std::exit(1);
  }
  const uint64_t each = n / producers;
  std::vector<std::function<void()>> ps, cs;
  for (int p = 0; p < producers; ++p) {
    ps.push_back([&] {
      auto ring = ShmRing::Open(name, RingRole::kProducer);
      if (!ring.ok()) _exit(2);
      const std::string message(size, 'x');
      if (api == Api::kBatch) {
        const std::vector<absl::string_view> batch(kBatch, message);
        for (uint64_t i = 0; i < each; i += kBatch) {
          const size_t k = static_cast<size_t>(std::min<uint64_t>(kBatch, each - i));
          if (!(*ring)->PushBatch(absl::MakeConstSpan(batch).first(k), absl::Seconds(30)).ok()) _exit(3);
        }
      } else {
        for (uint64_t i = 0; i < each; ++i) {
          if (!(*ring)->Push(message, absl::Seconds(30)).ok()) _exit(3);
        }
      }
      if (!(*ring)->CloseProducer().ok()) _exit(4);
    });
  }
  for (int c = 0; c < consumers; ++c) {
    cs.push_back([&] {
      auto ring = ShmRing::Open(name, RingRole::kConsumer);
      if (!ring.ok()) _exit(2);
      if (api == Api::kBatch) {
        std::vector<RingMessage> batch;  // reused: no allocation per message
        while (true) {
          const absl::StatusOr<size_t> got = (*ring)->PopBatch(&batch, kBatch, absl::Seconds(30));
          if (absl::IsOutOfRange(got.status())) break;
          if (!got.ok() || batch[*got - 1].payload.size() != size) _exit(3);
        }
        return;
      }
      if (api == Api::kView) {
        ShmRing::MessageView view;
        while (true) {
          const absl::Status s = (*ring)->PopView(&view, absl::Seconds(30));
          if (absl::IsOutOfRange(s)) break;
          if (!s.ok() || view.payload.size() != size) _exit(3);
          if (!(*ring)->ReleaseView(view).ok()) _exit(4);
        }
        return;
      }
      RingMessage m;  // reused: no allocation per message
      while (true) {
        const absl::Status s = (*ring)->PopInto(&m, absl::Seconds(30));
        if (absl::IsOutOfRange(s)) break;
        if (!s.ok() || m.payload.size() != size) _exit(3);
      }
    });
  }
  // Producers register before the stream can end: expected_producers would
  // do it too, but attaching is quick and Pop waits for the first one.
  const double seconds = RunPair(ps, cs);
  ShmRing::Remove(name).IgnoreError();
  return {seconds, each * producers, each * producers * size};
}

// The machine's load: these figures mean little on a shared, busy machine.
std::string LoadAverage() {
  double load[3] = {0, 0, 0};
  if (::getloadavg(load, 3) != 3) return "unknown";
  char text[64];
  std::snprintf(text, sizeof(text), "%.1f %.1f %.1f", load[0], load[1], load[2]);
  return text;
}

std::string Human(size_t size) {
  if (size >= (1 << 20)) return absl::StrCat(size >> 20, " MiB");
  if (size >= 1024) return absl::StrCat(size >> 10, " KiB");
  return absl::StrCat(size, " B");
}

// The fastest of --repeats runs of `run`.
Result Best(const std::function<Result()>& run) {
  Result best = run();
  for (int i = 1; i < absl::GetFlag(FLAGS_repeats); ++i) {
    const Result r = run();
    if (r.seconds < best.seconds) best = r;
  }
  return best;
}

void Print(const char* what, const Result& r) {
  std::printf("  %-28s %8.2f GB/s %12.0f msg/s\n", what, r.gbps(), r.mps());
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace moerl;
  const uint64_t total = uint64_t{static_cast<uint64_t>(absl::GetFlag(FLAGS_total_mib))} << 20;
  const size_t ring_bytes = size_t{static_cast<size_t>(absl::GetFlag(FLAGS_ring_mib))} << 20;
  std::printf("transport benchmark: %ld online CPUs, load average %s, ring of %zu MiB\n",
              ::sysconf(_SC_NPROCESSORS_ONLN), LoadAverage().c_str(), ring_bytes >> 20);
  for (size_t size : {size_t{64}, size_t{4096}, size_t{65536}, size_t{1} << 20}) {
    const uint64_t n = size == 64 ? static_cast<uint64_t>(absl::GetFlag(FLAGS_small_messages))
                                  : std::max<uint64_t>(total / size, 64);
    std::printf("%s messages, %llu of them, 1 producer -> 1 consumer (processes)\n", Human(size).c_str(),
                static_cast<unsigned long long>(n));
    const Result copy = Best([&] { return Memcpy(size, n, ring_bytes); });
    const Result pipe = Best([&] { return Pipe(size, n); });
    const Result mq = Best([&] { return MessageQueue(size, n); });
    const Result ring = Best([&] { return Ring(size, n, 1, 1, /*checksum=*/true, ring_bytes); });
    const Result ring_nocrc = Best([&] { return Ring(size, n, 1, 1, /*checksum=*/false, ring_bytes); });
    // The fast paths: batches where messages are small, the zero-copy
    // consumer where they are large.
    const bool small = size <= 4096;
    const Api fast_api = small ? Api::kBatch : Api::kView;
    const char* fast_name = small ? "ShmRing batch 64, CRC32C" : "ShmRing PopView, CRC32C";
    const char* fast_name_nocrc = small ? "ShmRing batch 64, no checksum" : "ShmRing PopView, no checksum";
    const Result fast = Best([&] { return Ring(size, n, 1, 1, /*checksum=*/true, ring_bytes, fast_api); });
    const Result fast_nocrc = Best([&] { return Ring(size, n, 1, 1, /*checksum=*/false, ring_bytes, fast_api); });
    Print("memcpy (one copy)", copy);
    Print("pipe", pipe);
    Print("boost message_queue", mq);
    Print("ShmRing, CRC32C", ring);
    Print("ShmRing, no checksum", ring_nocrc);
    Print(fast_name, fast);
    Print(fast_name_nocrc, fast_nocrc);
    std::printf("  ratios: ShmRing/memcpy %.2f (no checksum %.2f), ShmRing/pipe %.1fx, ShmRing/message_queue %.1fx\n",
                ring.gbps() / copy.gbps(), ring_nocrc.gbps() / copy.gbps(), ring.mps() / pipe.mps(),
                ring.mps() / mq.mps());
    std::printf("  ratios (%s): /memcpy %.2f (no checksum %.2f), /pipe %.1fx, /message_queue %.1fx\n",
                small ? "batch" : "PopView", fast.gbps() / copy.gbps(), fast_nocrc.gbps() / copy.gbps(),
                fast.mps() / pipe.mps(), fast.mps() / mq.mps());
    auto goal64 = [&](const char* what, const Result& r) {
      std::printf("  goal at 64 B (%s): >= 5e6 msg/s and >= 10x pipe: %.2fe6 msg/s, %.1fx -> %s\n", what,
                  r.mps() / 1e6, r.mps() / pipe.mps(), r.mps() >= 5e6 && r.mps() >= 10 * pipe.mps() ? "met" : "NOT met");
    };
    auto goal1m = [&](const char* what, const Result& r) {
      std::printf("  goal at 1 MiB (%s): >= 0.80 of memcpy: %.2f -> %s\n", what, r.gbps() / copy.gbps(),
                  r.gbps() >= 0.8 * copy.gbps() ? "met" : "NOT met");
    };
    if (size == 64) {
      goal64("Push/Pop, CRC32C", ring);
      goal64("batch 64, CRC32C", fast);
    }
    if (size == (1 << 20)) {
      goal1m("Push/Pop, CRC32C", ring);
      goal1m("PopView, CRC32C", fast);
      goal1m("PopView, no checksum", fast_nocrc);
    }
    const Result many = Best([&] { return Ring(size, n, 4, 4, /*checksum=*/true, ring_bytes); });
    Print("ShmRing 4 x 4, CRC32C", many);
    std::fflush(stdout);
  }
  return 0;
}
