// Transport benchmark: ShmRing against its peers, measured in the same run.
//
//   bazel build //common/transport:transport_benchmark
//   ./bazel-bin/common/transport/transport_benchmark            (~1-2 minutes)
//   ... -- --repeats=1 --total_mib=128 --small_messages=500000  (quicker, noisier)
//
// One producer and one consumer process per message size (64 B, 4 KiB,
// 64 KiB, 1 MiB), moving the same bytes through: memcpy (one thread, the
// physical limit of one copy), a Unix pipe, Boost.Interprocess
// message_queue, and ShmRing (plain mode, checksum on and off; one message
// per call, and the fast paths: PushBatch/PopBatch of 64 at 64 B and 4 KiB,
// the zero-copy PopView consumer at 64 KiB and 1 MiB). Then 4
// producers x 4 consumers on one ShmRing. Prints throughput, messages/s and
// the ratios the transport issue sets as goals.
//
// Fairness: every peer does its setup before the clock starts. Each child
// process opens and maps what it uses, allocates and touches its buffers,
// and passes a warm-up of messages through the channel that cycles it once
// (the ring's whole segment, the queue's every slot, the pipe's buffer), so
// page faults and first-use costs are outside the timed region, as they are
// for memcpy (whose buffers are allocated and written before its clock
// starts). Then it reports ready and waits; the clock starts when every
// child is ready and stops at the latest end time a child records right
// after its last message (before it unmaps and exits). Peers alternate
// within each round; each figure is the best of --repeats rounds.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <boost/interprocess/ipc/message_queue.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/transport/shm_ring.h"

ABSL_FLAG(int, repeats, 3, "rounds; each figure is the best of them (the machine is shared)");
ABSL_FLAG(int, total_mib, 512, "bytes moved per measurement for the large sizes, in MiB");
ABSL_FLAG(int, small_messages, 2000000, "messages per measurement at 64 B");
ABSL_FLAG(std::string, peers, "",
          "run only the peers whose names contain one of these '|'-separated strings (for profiling; "
          "no ratios are printed then)");
ABSL_FLAG(int, ring_mib, 8, "ShmRing capacity, and the span memcpy cycles its destination through, in MiB");
ABSL_FLAG(std::string, only, "", "comma-separated sizes to run (e.g. 64,1048576); empty: all");

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

int64_t NowNanos() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// What a child process calls: Ready() once its setup is done (it returns at
// the common start), Done() right after its last message.
class Barrier {
 public:
  Barrier(int ready_fd, int go_fd, int64_t* end_slot) : ready_fd_(ready_fd), go_fd_(go_fd), end_(end_slot) {}
  void Ready() const {
    const char c = 'r';
    if (::write(ready_fd_, &c, 1) != 1) _exit(8);
    char g;
    if (::read(go_fd_, &g, 1) != 0) _exit(9);  // the start is EOF
  }
  void Done() const { *end_ = NowNanos(); }

 private:
  int ready_fd_, go_fd_;
  int64_t* end_;
};

using Body = std::function<void(const Barrier&)>;

// Runs each body in its own child process; times from the moment every
// child is ready to the latest Done().
double RunChildren(const std::vector<Body>& producers, const std::vector<Body>& consumers) {
  const size_t count = producers.size() + consumers.size();
  auto* ends = static_cast<int64_t*>(
      ::mmap(nullptr, count * sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (ends == MAP_FAILED) std::abort();
  int ready[2], go[2];
  if (::pipe(ready) != 0 || ::pipe(go) != 0) std::abort();
  std::vector<pid_t> pids;
  auto spawn = [&](const Body& body) {
    int64_t* slot = ends + pids.size();
    *slot = 0;
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(go[1]);
      ::close(ready[0]);
      body(Barrier(ready[1], go[0], slot));
      if (*slot == 0) _exit(7);  // body forgot Done()
      _exit(0);
    }
    pids.push_back(pid);
  };
  for (const auto& c : consumers) spawn(c);
  for (const auto& p : producers) spawn(p);
  ::close(go[0]);
  ::close(ready[1]);
  for (size_t i = 0; i < count; ++i) {
    char c;
    if (::read(ready[0], &c, 1) != 1) {
      std::fprintf(stderr, "a benchmark child died during its setup\n");
      std::exit(1);
    }
  }
  const int64_t start = NowNanos();
  ::close(go[1]);
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "benchmark child %d failed (status %d)\n", pid, status);
      std::exit(1);
    }
  }
  ::close(ready[0]);
  int64_t end = start;
  for (size_t i = 0; i < count; ++i) end = std::max(end, ends[i]);
  ::munmap(ends, count * sizeof(int64_t));
  return (end - start) * 1e-9;
}

Result Memcpy(size_t size, uint64_t n, size_t ring_bytes) {
  // Destinations cycle through as many bytes as the ring has, so that the
  // copies see the same caches as ring slots do. Buffers are allocated and
  // written (one pass over the span) before the clock starts.
  const size_t span = std::max<size_t>(ring_bytes, size);
  std::vector<char> src(size, 'x'), dst(span, 'y');
  size_t offset = 0;
  const int64_t start = NowNanos();
  for (uint64_t i = 0; i < n; ++i) {
    if (offset + size > span) offset = 0;
    std::memcpy(dst.data() + offset, src.data(), size);
    offset += (size + 63) & ~size_t{63};
  }
  asm volatile("" : : "r"(dst.data()) : "memory");
  return {(NowNanos() - start) * 1e-9, n, n * size};
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

// Messages that cycle a channel of `bytes` once (at least 2).
uint64_t WarmUpMessages(size_t bytes, size_t size) { return std::max<uint64_t>(bytes / size + 1, 2); }

Result Pipe(size_t size, uint64_t n) {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  const uint64_t warm = WarmUpMessages(64 << 10, size + 4);  // the default pipe buffer
  const double seconds = RunChildren(
      {[&](const Barrier& barrier) {
        ::close(fds[0]);
        std::string message(4 + size, 'x');
        const uint32_t len = static_cast<uint32_t>(size);
        std::memcpy(&message[0], &len, 4);
        for (uint64_t i = 0; i < warm; ++i) {
          if (!WriteAll(fds[1], message.data(), message.size())) _exit(2);
        }
        barrier.Ready();
        for (uint64_t i = 0; i < n; ++i) {
          if (!WriteAll(fds[1], message.data(), message.size())) _exit(2);
        }
        barrier.Done();
      }},
      {[&](const Barrier& barrier) {
        ::close(fds[1]);
        std::string buffer(size, '\0');
        auto receive = [&] {
          uint32_t len = 0;
          if (!ReadAll(fds[0], reinterpret_cast<char*>(&len), 4) || len != size) _exit(2);
          if (!ReadAll(fds[0], &buffer[0], len)) _exit(3);
        };
        for (uint64_t i = 0; i < warm; ++i) receive();
        barrier.Ready();
        for (uint64_t i = 0; i < n; ++i) receive();
        barrier.Done();
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
  const double seconds = RunChildren(
      {[&](const Barrier& barrier) {
        bip::message_queue mq(bip::open_only, name.c_str());
        std::string message(size, 'x');
        for (uint64_t i = 0; i < slots; ++i) mq.send(message.data(), size, 0);  // warm-up: every slot
        barrier.Ready();
        for (uint64_t i = 0; i < n; ++i) mq.send(message.data(), size, 0);
        barrier.Done();
      }},
      {[&](const Barrier& barrier) {
        bip::message_queue mq(bip::open_only, name.c_str());
        std::string buffer(size, '\0');
        size_t got = 0;
        unsigned priority = 0;
        auto receive = [&] {
          mq.receive(&buffer[0], size, got, priority);
          if (got != size) _exit(2);
        };
        for (uint64_t i = 0; i < slots; ++i) receive();
        barrier.Ready();
        for (uint64_t i = 0; i < n; ++i) receive();
        barrier.Done();
      }});
  bip::message_queue::remove(name.c_str());
  return {seconds, n, n * size};
}

// How the ring is driven: one message per call (Push / PopInto), batches
// (PushBatch / PopBatch of kBatch), or the zero-copy consumer (Push /
// PopView + ReleaseView: the consumer reads the payload in place).
enum class Api { kSingle, kBatch, kView };
constexpr size_t kBatch = 64;

std::unique_ptr<ShmRing> OpenOrDie(const std::string& name, RingRole role) {
  absl::StatusOr<std::unique_ptr<ShmRing>> ring = ShmRing::Open(name, role);
  if (!ring.ok()) {
    std::fprintf(stderr, "%s\n", ring.status().ToString().c_str());
    _exit(2);
  }
  return std::move(*ring);
}

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
  // Warm-up: one pass of messages through the whole segment, so both sides
  // have faulted in and cached every page before the clock starts. Only
  // with one consumer (which then knows how many to take).
  const uint64_t warm = consumers == 1 ? WarmUpMessages(ring_bytes, size) / producers : 0;
  std::vector<Body> ps, cs;
  for (int p = 0; p < producers; ++p) {
    ps.push_back([&](const Barrier& barrier) {
      std::unique_ptr<ShmRing> ring = OpenOrDie(name, RingRole::kProducer);
      const std::string message(size, 'x');
      const std::vector<absl::string_view> batch(kBatch, message);
      for (uint64_t i = 0; i < warm; ++i) {
        if (!ring->Push(message, absl::Seconds(30)).ok()) _exit(3);
      }
      barrier.Ready();
      if (api == Api::kBatch) {
        for (uint64_t i = 0; i < each; i += kBatch) {
          const size_t k = static_cast<size_t>(std::min<uint64_t>(kBatch, each - i));
          if (!ring->PushBatch(absl::MakeConstSpan(batch).first(k), absl::Seconds(30)).ok()) _exit(3);
        }
      } else {
        for (uint64_t i = 0; i < each; ++i) {
          if (!ring->Push(message, absl::Seconds(30)).ok()) _exit(3);
        }
      }
      if (!ring->CloseProducer().ok()) _exit(4);
      barrier.Done();
    });
  }
  for (int c = 0; c < consumers; ++c) {
    cs.push_back([&](const Barrier& barrier) {
      std::unique_ptr<ShmRing> ring = OpenOrDie(name, RingRole::kConsumer);
      // Buffers reused, no allocation per message; sized and touched now.
      RingMessage m;
      m.payload.assign(size, 'z');
      std::vector<RingMessage> batch(kBatch);
      for (RingMessage& b : batch) b.payload.assign(size, 'z');
      for (uint64_t i = 0; i < warm * producers; ++i) {
        if (!ring->PopInto(&m, absl::Seconds(30)).ok()) _exit(3);
      }
      barrier.Ready();
      if (api == Api::kBatch) {
        while (true) {
          const absl::StatusOr<size_t> got = ring->PopBatch(&batch, kBatch, absl::Seconds(30));
          if (absl::IsOutOfRange(got.status())) break;
          if (!got.ok() || batch[*got - 1].payload.size() != size) _exit(3);
        }
      } else if (api == Api::kView) {
        ShmRing::MessageView view;
        while (true) {
          const absl::Status s = ring->PopView(&view, absl::Seconds(30));
          if (absl::IsOutOfRange(s)) break;
          if (!s.ok() || view.payload.size() != size) _exit(3);
          if (!ring->ReleaseView(view).ok()) _exit(4);
        }
      } else {
        while (true) {
          const absl::Status s = ring->PopInto(&m, absl::Seconds(30));
          if (absl::IsOutOfRange(s)) break;
          if (!s.ok() || m.payload.size() != size) _exit(3);
        }
      }
      barrier.Done();
    });
  }
  const double seconds = RunChildren(ps, cs);
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

void Print(const std::string& what, const Result& r) {
  std::printf("  %-32s %8.2f GB/s %12.0f msg/s\n", what.c_str(), r.gbps(), r.mps());
}

struct Peer {
  std::string name;
  std::function<Result()> run;
  Result best;
};

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace moerl;
  const uint64_t total = uint64_t{static_cast<uint64_t>(absl::GetFlag(FLAGS_total_mib))} << 20;
  const size_t ring_bytes = size_t{static_cast<size_t>(absl::GetFlag(FLAGS_ring_mib))} << 20;
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  std::printf("transport benchmark: %ld online CPUs, load average %s, ring of %zu MiB, best of %d rounds\n",
              ::sysconf(_SC_NPROCESSORS_ONLN), LoadAverage().c_str(), ring_bytes >> 20, repeats);
  const std::string only = absl::StrCat(",", absl::GetFlag(FLAGS_only), ",");
  for (size_t size : {size_t{64}, size_t{4096}, size_t{65536}, size_t{1} << 20}) {
    if (only != ",," && only.find(absl::StrCat(",", size, ",")) == std::string::npos) continue;
    const uint64_t n = size == 64 ? static_cast<uint64_t>(absl::GetFlag(FLAGS_small_messages))
                                  : std::max<uint64_t>(total / size, 64);
    std::printf("%s messages, %llu of them, 1 producer -> 1 consumer (processes)\n", Human(size).c_str(),
                static_cast<unsigned long long>(n));
    // The fast paths: batches where messages are small, the zero-copy
    // consumer where they are large.
    const bool small = size <= 4096;
    const Api fast_api = small ? Api::kBatch : Api::kView;
    const std::string fast = small ? "ShmRing batch 64" : "ShmRing PopView";
    std::vector<Peer> peers = {
        {"memcpy (one copy)", [&] { return Memcpy(size, n, ring_bytes); }, {}},
        {"pipe", [&] { return Pipe(size, n); }, {}},
        {"boost message_queue", [&] { return MessageQueue(size, n); }, {}},
        {"ShmRing, checksum", [&] { return Ring(size, n, 1, 1, true, ring_bytes); }, {}},
        {"ShmRing, no checksum", [&] { return Ring(size, n, 1, 1, false, ring_bytes); }, {}},
        {fast + ", checksum", [&] { return Ring(size, n, 1, 1, true, ring_bytes, fast_api); }, {}},
        {fast + ", no checksum", [&] { return Ring(size, n, 1, 1, false, ring_bytes, fast_api); }, {}},
        {"ShmRing 4 x 4, checksum", [&] { return Ring(size, n, 4, 4, true, ring_bytes); }, {}},
    };
    const std::vector<std::string> wanted = absl::StrSplit(absl::GetFlag(FLAGS_peers), '|', absl::SkipEmpty());
    auto selected = [&](const Peer& peer) {
      if (wanted.empty()) return true;
      for (const std::string& w : wanted) {
        if (peer.name.find(w) != std::string::npos) return true;
      }
      return false;
    };
    // Alternating rounds: a burst of load hits every peer alike. Each round
    // after the first runs the peers in another order (a fixed shuffle), so
    // that no peer always runs right after the same one: right after the
    // pipe and message_queue peers, the 1 MiB ring measured about 30 %
    // slower than right after memcpy.
    std::vector<size_t> order(peers.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::mt19937 shuffle_rng(static_cast<uint32_t>(size));
    for (int round = 0; round < repeats; ++round) {
      if (round > 0) std::shuffle(order.begin(), order.end(), shuffle_rng);
      for (size_t k : order) {
        Peer& peer = peers[k];
        if (!selected(peer)) continue;
        const Result r = peer.run();
        if (round == 0 || r.seconds < peer.best.seconds) peer.best = r;
      }
    }
    for (const Peer& peer : peers) {
      if (selected(peer)) Print(peer.name, peer.best);
    }
    if (!wanted.empty()) continue;
    const Result& copy = peers[0].best;
    const Result& pipe = peers[1].best;
    const Result& mq = peers[2].best;
    const Result& ring = peers[3].best;
    const Result& ring_nocrc = peers[4].best;
    const Result& fast_r = peers[5].best;
    const Result& fast_nocrc = peers[6].best;
    std::printf("  ratios: ShmRing/memcpy %.2f (no checksum %.2f), ShmRing/pipe %.1fx, ShmRing/message_queue %.1fx\n",
                ring.gbps() / copy.gbps(), ring_nocrc.gbps() / copy.gbps(), ring.mps() / pipe.mps(),
                ring.mps() / mq.mps());
    std::printf("  ratios (%s): /memcpy %.2f (no checksum %.2f), /pipe %.1fx, /message_queue %.1fx\n",
                small ? "batch" : "PopView", fast_r.gbps() / copy.gbps(), fast_nocrc.gbps() / copy.gbps(),
                fast_r.mps() / pipe.mps(), fast_r.mps() / mq.mps());
    auto goal64 = [&](const char* what, const Result& r) {
      std::printf("  goal at 64 B (%s): >= 5e6 msg/s and >= 10x pipe: %.2fe6 msg/s, %.1fx -> %s\n", what,
                  r.mps() / 1e6, r.mps() / pipe.mps(), r.mps() >= 5e6 && r.mps() >= 10 * pipe.mps() ? "met" : "NOT met");
    };
    auto goal1m = [&](const char* what, const Result& r) {
      std::printf("  goal at 1 MiB (%s): >= 0.80 of memcpy: %.2f -> %s\n", what, r.gbps() / copy.gbps(),
                  r.gbps() >= 0.8 * copy.gbps() ? "met" : "NOT met");
    };
    if (size == 64) {
      goal64("Push/Pop, checksum", ring);
      goal64("batch 64, checksum", fast_r);
    }
    if (size == (1 << 20)) {
      goal1m("Push/Pop, checksum", ring);
      goal1m("PopView, checksum", fast_r);
      goal1m("Push/Pop, no checksum", ring_nocrc);
    }
    std::fflush(stdout);
  }
  std::printf("load average at the end: %s\n", LoadAverage().c_str());
  return 0;
}
