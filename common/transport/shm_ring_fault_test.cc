// Kill -9 at random points: fork()ed producers and consumers move messages
// that carry (lane, incarnation, sequence) and a self-check through a
// ShmRing, while the test SIGKILLs a random one of them every few hundred
// microseconds and starts a replacement. Afterwards, from a ledger in shared
// memory:
//   - 0 torn messages (every delivered message matches what was pushed),
//   - plain mode: 0 duplicates, per-producer order kept, and at most one
//     message lost per consumer killed (one it had already taken),
//   - acknowledged mode: 0 lost, and every repeated delivery carries
//     delivery_count > 1 and is counted in RingStats::redelivered.
// MOERL_FAULT_INJECTIONS (a compile-time define, see BUILD) sets the number
// of kills per delivery mode: 1000+ in CI, 10000 in the manual long variant.
// MOERL_FAULT_FAST=1 (shm_ring_fast_fault_test) drives the fast paths
// instead: producers PushBatch up to kFastBatch messages, consumers take
// turns with PopBatch and PopView. Their documented differences: a plain
// mode consumer killed inside PopBatch loses at most that batch, a view held
// by a killed consumer is delivered again (delivery_count > 1), and a killed
// producer may have published a whole batch it did not record.
// MOERL_FAULT_RING_CHECKSUM=0 turns the ring's own checksum off
// (checksum_payloads = false): no message may be torn without it either,
// since a message becomes visible only once complete (the messages' own
// check, MessageHead::body_crc, still tells).
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/transport/crc32c.h"
#include "common/transport/shm_ring.h"
#include "gtest/gtest.h"

#ifndef MOERL_FAULT_INJECTIONS
#define MOERL_FAULT_INJECTIONS 1000
#endif
#ifndef MOERL_FAULT_FAST
#define MOERL_FAULT_FAST 0
#endif
#ifndef MOERL_FAULT_RING_CHECKSUM
#define MOERL_FAULT_RING_CHECKSUM 1
#endif

namespace moerl {
namespace {

constexpr int kInjections = MOERL_FAULT_INJECTIONS;
constexpr bool kFast = MOERL_FAULT_FAST != 0;
constexpr uint32_t kFastBatch = 8;
// Messages one kill may lose (plain mode) or publish unrecorded.
constexpr uint32_t kPerKill = kFast ? kFastBatch : 1;
constexpr int kLanes = 3;      // producer slots; each killed producer is restarted as a new incarnation
constexpr int kConsumers = 3;
constexpr int kMaxIncarnations = kInjections + 2;
constexpr int kMaxSeq = 2048;  // per incarnation
constexpr absl::Duration kPatience = absl::Seconds(5);

struct MessageHead {
  uint32_t lane, incarnation, seq, body_bytes;
  uint32_t body_crc;
};

uint64_t SplitMix(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string MakeMessage(uint32_t lane, uint32_t incarnation, uint32_t seq) {
  uint64_t state = (uint64_t{lane} << 48) ^ (uint64_t{incarnation} << 20) ^ seq;
  // Sizes on both sides of ShmRing's 4 KiB copy-under-lock threshold.
  const uint32_t body_bytes = static_cast<uint32_t>(SplitMix(&state) % 9000);
  std::string body(body_bytes, '\0');
  for (char& c : body) c = static_cast<char>(SplitMix(&state));
  MessageHead head{lane, incarnation, seq, body_bytes, Crc32c(body)};
  return std::string(reinterpret_cast<const char*>(&head), sizeof(head)) + body;
}

// Shared between the test and every child (MAP_SHARED | MAP_ANONYMOUS).
struct Ledger {
  std::atomic<uint32_t> stop;
  std::atomic<uint64_t> torn, duplicates, unexplained_repeats, order_violations, ring_errors, delivered;
  std::atomic<int32_t> pushed_upto[kLanes][kMaxIncarnations];  // last seq whose Push returned OK
  std::atomic<uint8_t> received[kLanes][kMaxIncarnations][kMaxSeq];
};

void RunProducer(const std::string& name, Ledger* ledger, uint32_t lane, uint32_t incarnation) {
  auto ring = ShmRing::Open(name, RingRole::kProducer);
  if (!ring.ok()) _exit(3);
  if (kFast) {
    std::vector<std::string> batch;
    for (uint32_t seq = 0; seq < kMaxSeq && !ledger->stop.load();) {
      batch.clear();
      for (uint32_t k = 0; k < 1 + seq % kFastBatch && seq + k < kMaxSeq; ++k) {
        batch.push_back(MakeMessage(lane, incarnation, seq + k));
      }
      const std::vector<absl::string_view> views(batch.begin(), batch.end());
      size_t pushed = 0;
      const absl::Status status = (*ring)->PushBatch(views, kPatience, &pushed);
      seq += static_cast<uint32_t>(pushed);
      if (pushed > 0) ledger->pushed_upto[lane][incarnation].store(static_cast<int32_t>(seq - 1));
      if (!status.ok() && !absl::IsDeadlineExceeded(status)) break;
    }
  }
  for (uint32_t seq = 0; seq < kMaxSeq && !kFast && !ledger->stop.load(); ++seq) {
    const std::string message = MakeMessage(lane, incarnation, seq);
    absl::Status pushed;
    do {
      pushed = (*ring)->Push(message, kPatience);
    } while (absl::IsDeadlineExceeded(pushed) && !ledger->stop.load());
    if (!pushed.ok()) break;
    ledger->pushed_upto[lane][incarnation].store(static_cast<int32_t>(seq));
  }
  while (!ledger->stop.load()) ::usleep(1000);
  if (!(*ring)->CloseProducer().ok()) _exit(4);
  _exit(0);
}

// Checks one delivered message against the ledger.
void Record(Ledger* ledger, bool acknowledged, absl::string_view payload, uint32_t delivery_count,
            std::vector<int32_t>* last_seq) {
  MessageHead head{};
  if (payload.size() < sizeof(head)) {
    ledger->torn.fetch_add(1);
    return;
  }
  std::memcpy(&head, payload.data(), sizeof(head));
  if (head.lane >= kLanes || head.incarnation >= kMaxIncarnations || head.seq >= kMaxSeq ||
      payload != MakeMessage(head.lane, head.incarnation, head.seq)) {
    ledger->torn.fetch_add(1);
    return;
  }
  const uint8_t before = ledger->received[head.lane][head.incarnation][head.seq].fetch_add(1);
  ledger->delivered.fetch_add(1);
  if (before > 0) {
    // Fast paths: a view is delivered again (delivery_count > 1) when its
    // holder dies before releasing it, in plain mode too.
    if (!acknowledged && (!kFast || delivery_count < 2)) ledger->duplicates.fetch_add(1);
    if (delivery_count < 2) ledger->unexplained_repeats.fetch_add(1);
  }
  if (delivery_count == 1) {
    int32_t& last = (*last_seq)[head.lane * kMaxIncarnations + head.incarnation];
    if (static_cast<int32_t>(head.seq) <= last) ledger->order_violations.fetch_add(1);
    last = static_cast<int32_t>(head.seq);
  }
}

void RunConsumer(const std::string& name, Ledger* ledger, bool acknowledged) {
  auto ring = ShmRing::Open(name, RingRole::kConsumer);
  if (!ring.ok()) _exit(3);
  std::vector<int32_t> last_seq(kLanes * kMaxIncarnations, -1);
  std::vector<RingMessage> batch;
  for (uint64_t round = 0;; ++round) {
    if (kFast && round % 2 == 1) {
      ShmRing::MessageView view;
      const absl::Status status = (*ring)->PopView(&view, kPatience);
      if (absl::IsOutOfRange(status)) _exit(0);
      if (absl::IsDeadlineExceeded(status)) continue;
      if (!status.ok()) {
        ledger->ring_errors.fetch_add(1);
        continue;
      }
      Record(ledger, acknowledged, view.payload, view.delivery_count, &last_seq);
      if (!(*ring)->ReleaseView(view).ok()) ledger->ring_errors.fetch_add(1);
      continue;
    }
    if (kFast) {
      absl::StatusOr<size_t> n = (*ring)->PopBatch(&batch, kFastBatch, kPatience);
      if (absl::IsOutOfRange(n.status())) _exit(0);
      if (absl::IsDeadlineExceeded(n.status())) continue;
      if (!n.ok()) {
        ledger->ring_errors.fetch_add(1);
        continue;
      }
      for (size_t k = 0; k < *n; ++k) {
        Record(ledger, acknowledged, batch[k].payload, batch[k].delivery_count, &last_seq);
        if (acknowledged && !(*ring)->Ack(batch[k].ticket).ok()) ledger->ring_errors.fetch_add(1);
      }
      continue;
    }
    absl::StatusOr<RingMessage> m = (*ring)->Pop(kPatience);
    if (absl::IsOutOfRange(m.status())) _exit(0);
    if (absl::IsDeadlineExceeded(m.status())) continue;
    if (!m.ok()) {
      ledger->ring_errors.fetch_add(1);
      continue;
    }
    Record(ledger, acknowledged, m->payload, m->delivery_count, &last_seq);
    if (acknowledged && !(*ring)->Ack(m->ticket).ok()) ledger->ring_errors.fetch_add(1);
  }
}

class FaultInjection : public ::testing::TestWithParam<DeliveryMode> {};

TEST_P(FaultInjection, KillNineNeverTearsLosesOrDuplicates) {
  const bool acknowledged = GetParam() == DeliveryMode::kAcknowledged;
  const std::string name = absl::StrCat("fault", ::getpid(), ".", acknowledged ? "ack" : "plain", ".ring");
  ShmRing::Remove(name).IgnoreError();
  ASSERT_TRUE(ShmRing::Create(name, {.capacity_bytes = 64 << 10,
                                      .mode = GetParam(),
                                      .checksum_payloads = MOERL_FAULT_RING_CHECKSUM != 0}).ok());

  void* memory = ::mmap(nullptr, sizeof(Ledger), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  auto* ledger = static_cast<Ledger*>(memory);  // zero-filled: atomics start at 0
  for (auto& lane : ledger->pushed_upto) {
    for (auto& upto : lane) upto.store(-1);
  }

  std::vector<pid_t> producers(kLanes), consumers(kConsumers);
  std::vector<uint32_t> incarnation(kLanes, 0);
  auto spawn_producer = [&](int lane) {
    const pid_t pid = ::fork();
    if (pid == 0) RunProducer(name, ledger, lane, incarnation[lane]);
    producers[lane] = pid;
  };
  auto spawn_consumer = [&](int slot) {
    const pid_t pid = ::fork();
    if (pid == 0) RunConsumer(name, ledger, acknowledged);
    consumers[slot] = pid;
  };
  for (int l = 0; l < kLanes; ++l) spawn_producer(l);
  for (int c = 0; c < kConsumers; ++c) spawn_consumer(c);

  std::mt19937 rng(acknowledged ? 17 : 29);
  int producer_kills = 0, consumer_kills = 0;
  const absl::Time start = absl::Now();
  for (int k = 0; k < kInjections; ++k) {
    ::usleep(rng() % 1500);
    const int victim = rng() % (kLanes + kConsumers);
    const pid_t pid = victim < kLanes ? producers[victim] : consumers[victim - kLanes];
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    if (victim < kLanes) {
      ++producer_kills;
      ++incarnation[victim];
      spawn_producer(victim);
    } else {
      ++consumer_kills;
      spawn_consumer(victim - kLanes);
    }
  }
  const absl::Duration injecting = absl::Now() - start;
  ledger->stop.store(1);

  // Everyone must now finish on their own: producers close, consumers drain
  // and see end of stream.
  auto wait_all = [&](std::vector<pid_t>& pids, const char* what) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    for (pid_t& pid : pids) {
      int status = 0;
      while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (absl::Now() > deadline) {
          ::kill(pid, SIGKILL);
          ::waitpid(pid, &status, 0);
          ADD_FAILURE() << what << " " << pid << " did not finish within 30 s";
          break;
        }
        ::usleep(2000);
      }
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << what << " " << pid << " ended with status " << status;
    }
  };
  wait_all(producers, "producer");
  wait_all(consumers, "consumer");

  uint64_t lost = 0, phantom = 0, pushed = 0, repeated = 0;
  for (int l = 0; l < kLanes; ++l) {
    for (uint32_t i = 0; i <= incarnation[l]; ++i) {
      const int32_t upto = ledger->pushed_upto[l][i].load();
      pushed += static_cast<uint64_t>(upto + 1);
      for (int s = 0; s < kMaxSeq; ++s) {
        const uint8_t got = ledger->received[l][i][s].load();
        if (s <= upto && got == 0) ++lost;
        // Only the one message a killed producer committed before it could
        // record its Push may arrive unrecorded.
        if (s > upto + static_cast<int32_t>(kPerKill) && got > 0) ++phantom;
        if (got > 1) ++repeated;
      }
    }
  }
  auto observer = ShmRing::Open(name, RingRole::kObserver);
  ASSERT_TRUE(observer.ok());
  const RingStats stats = (*observer)->Stats();
  std::printf("%s mode: %d injections (%d producers, %d consumers killed) in %s; %llu pushed, "
              "%llu delivered, %llu received more than once, %llu redeliveries counted by the ring, %llu lost\n",
              acknowledged ? "acknowledged" : "plain", kInjections, producer_kills, consumer_kills,
              absl::FormatDuration(injecting).c_str(), static_cast<unsigned long long>(pushed),
              static_cast<unsigned long long>(ledger->delivered.load()),
              static_cast<unsigned long long>(repeated),
              static_cast<unsigned long long>(stats.redelivered), static_cast<unsigned long long>(lost));

  EXPECT_EQ(ledger->torn.load(), 0u);
  EXPECT_EQ(ledger->ring_errors.load(), 0u);
  EXPECT_EQ(phantom, 0u);
  EXPECT_EQ(ledger->unexplained_repeats.load(), 0u) << "a repeated delivery with delivery_count 1";
  EXPECT_GE(stats.redelivered, repeated) << "every repeated delivery is counted";
  EXPECT_EQ(stats.depth_messages, 0u);
  EXPECT_EQ(stats.in_flight, 0u);
  EXPECT_TRUE(stats.end_of_stream);
  EXPECT_GT(pushed, static_cast<uint64_t>(kInjections)) << "too little traffic to mean anything";
  if (acknowledged) {
    EXPECT_EQ(lost, 0u);
  } else {
    EXPECT_EQ(ledger->duplicates.load(), 0u);
    EXPECT_EQ(ledger->order_violations.load(), 0u);
    EXPECT_LE(lost, static_cast<uint64_t>(consumer_kills) * kPerKill)
        << "plain mode loses at most the message (fast paths: the batch) a killed consumer held";
  }
  ::munmap(memory, sizeof(Ledger));
  ShmRing::Remove(name).IgnoreError();
}

INSTANTIATE_TEST_SUITE_P(Modes, FaultInjection,
                         ::testing::Values(DeliveryMode::kPlain, DeliveryMode::kAcknowledged),
                         [](const ::testing::TestParamInfo<DeliveryMode>& info) {
                           return info.param == DeliveryMode::kPlain ? std::string("Plain")
                                                                     : std::string("Acknowledged");
                         });

}  // namespace
}  // namespace moerl
