// ShmRing on a segment whose shared bookkeeping was damaged by a stray
// writer: each corrupted State field and slot header field gives a clean
// DataLoss naming the field and its byte offset, and random damage to the
// header and slot region never crashes, loops or over-reads (each random
// case runs in a child process with an alarm; run it under ASan too:
// bazel test --config=asan //common/transport:shm_ring_damage_test).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/transport/shm_ring.h"
#include "common/transport/shm_ring_segment.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using shm_ring_internal::kHeaderBytes;
using shm_ring_internal::SegmentHeader;
using shm_ring_internal::SlotHeader;
using shm_ring_internal::ProducerState;
using shm_ring_internal::State;

constexpr absl::Duration kShort = absl::Milliseconds(50);
constexpr uint64_t kCapacity = 1 << 16;

class ShmRingDamageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    if (test.size() > 60) test.resize(60);
    name_ = absl::StrCat("dmgtest", ::getpid(), ".", test, ".hop");
    ShmRing::Remove(name_).IgnoreError();
    ASSERT_TRUE(ShmRing::Create(name_, {.capacity_bytes = kCapacity}).ok());
  }
  void TearDown() override { ShmRing::Remove(name_).IgnoreError(); }

  // Three messages of 100, 200 and 300 bytes; returns the producer.
  std::unique_ptr<ShmRing> Fill() {
    auto producer = ShmRing::Open(name_, RingRole::kProducer);
    EXPECT_TRUE(producer.ok()) << producer.status();
    for (int size : {100, 200, 300}) EXPECT_TRUE((*producer)->Push(std::string(size, 'p'), kShort).ok());
    return std::move(*producer);
  }

  void Poke(uint64_t offset, const void* bytes, size_t n) {
    const int fd = ::open(ShmRing::SegmentPath(name_).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
    ::close(fd);
  }
  void Poke64(uint64_t offset, uint64_t value) { Poke(offset, &value, sizeof(value)); }
  void Poke32(uint64_t offset, uint32_t value) { Poke(offset, &value, sizeof(value)); }

  std::string ReadAll() {
    std::string bytes(kHeaderBytes + kCapacity, '\0');
    const int fd = ::open(ShmRing::SegmentPath(name_).c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pread(fd, &bytes[0], bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    return bytes;
  }

  static uint64_t StateOffset(size_t field) { return offsetof(SegmentHeader, state) + field; }
  static uint64_t TailOffset() { return offsetof(SegmentHeader, producer) + offsetof(ProducerState, tail); }
  // Slot header field of the slot at data-area offset `slot`.
  static uint64_t SlotOffset(uint64_t slot, size_t field) { return kHeaderBytes + slot + field; }

  // Pop, Peek and (for State damage) Open all report `field` at `offset`.
  void ExpectDataLoss(const std::string& field, uint64_t offset, bool open_fails) {
    const std::string where = absl::StrCat("field ", field, " = ");
    const std::string at = absl::StrCat("at byte offset ", offset, " ");
    auto consumer = ShmRing::Open(name_, RingRole::kConsumer);
    if (open_fails) {
      ASSERT_EQ(consumer.status().code(), absl::StatusCode::kDataLoss) << consumer.status();
      EXPECT_NE(consumer.status().message().find(where), std::string::npos) << consumer.status();
      EXPECT_NE(consumer.status().message().find(at), std::string::npos) << consumer.status();
    } else {
      ASSERT_TRUE(consumer.ok()) << consumer.status();
      absl::StatusOr<RingMessage> m = (*consumer)->Pop(kShort);
      ASSERT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
      EXPECT_NE(m.status().message().find(where), std::string::npos) << m.status();
      EXPECT_NE(m.status().message().find(at), std::string::npos) << m.status();
      // Sticky: the next call says the same, at once.
      EXPECT_EQ((*consumer)->TryPop().status().code(), absl::StatusCode::kDataLoss);
    }
    auto observer = ShmRing::Open(name_, RingRole::kObserver);
    ASSERT_TRUE(observer.ok()) << observer.status();
    absl::StatusOr<std::vector<RingMessage>> peek = (*observer)->Peek(10);
    ASSERT_EQ(peek.status().code(), absl::StatusCode::kDataLoss) << peek.status();
    EXPECT_NE(peek.status().message().find(where), std::string::npos) << peek.status();
    EXPECT_NE(peek.status().message().find(at), std::string::npos) << peek.status();
  }

  std::string name_;
};

TEST_F(ShmRingDamageTest, MisalignedFreePosIsDataLossNamingIt) {
  auto producer = Fill();
  const uint64_t offset = StateOffset(offsetof(State, free_pos));
  Poke64(offset, 13);
  ExpectDataLoss("free_pos", offset, /*open_fails=*/true);
}

TEST_F(ShmRingDamageTest, TailMoreThanACapacityPastFreePosIsDataLoss) {
  auto producer = Fill();
  const uint64_t offset = TailOffset();
  Poke64(offset, uint64_t{1} << 40);
  ExpectDataLoss("tail", offset, /*open_fails=*/true);
}

TEST_F(ShmRingDamageTest, MisalignedTailIsDataLossForProducersToo) {
  auto producer = Fill();
  const uint64_t offset = TailOffset();
  Poke64(offset, kCapacity + 13);
  ExpectDataLoss("tail", offset, /*open_fails=*/true);
  auto writer = ShmRing::Open(name_, RingRole::kProducer);
  ASSERT_EQ(writer.status().code(), absl::StatusCode::kDataLoss) << writer.status();
  // A producer that opened before the damage finds it on its next Push.
  const absl::Status pushed = producer->TryPush("after the damage");
  ASSERT_EQ(pushed.code(), absl::StatusCode::kDataLoss) << pushed;
  EXPECT_NE(pushed.message().find("field tail = "), std::string::npos) << pushed;
  EXPECT_NE(pushed.message().find(absl::StrCat("at byte offset ", offset, " ")), std::string::npos) << pushed;
}

// tail put back over live messages is consistent on its own (aligned, in
// range), so a newcomer cannot tell; every participant that saw the higher
// tail can, and says so instead of losing the messages silently.
TEST_F(ShmRingDamageTest, TailMovedBackIsDataLossForWhoeverSawItHigher) {
  auto producer = Fill();
  auto consumer = ShmRing::Open(name_, RingRole::kConsumer);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Pop(kShort).ok());  // sees the tail after all three
  const uint64_t offset = TailOffset();
  Poke64(offset, 192);  // back to the end of the first (100-byte) message
  const std::string at = absl::StrCat("at byte offset ", offset, " ");
  // The producer finds it on its next Push.
  const absl::Status pushed = producer->TryPush("after the damage");
  ASSERT_EQ(pushed.code(), absl::StatusCode::kDataLoss) << pushed;
  EXPECT_NE(pushed.message().find("field tail = 192"), std::string::npos) << pushed;
  EXPECT_NE(pushed.message().find("moved back"), std::string::npos) << pushed;
  EXPECT_NE(pushed.message().find(at), std::string::npos) << pushed;
  // The consumer takes what it already knew to be there, then finds it.
  absl::Status popped;
  for (int i = 0; i < 3 && popped.ok(); ++i) popped = (*consumer)->Pop(kShort).status();
  ASSERT_EQ(popped.code(), absl::StatusCode::kDataLoss) << popped;
  EXPECT_NE(popped.message().find("moved back"), std::string::npos) << popped;
}

TEST_F(ShmRingDamageTest, FreePosPastTailIsDataLoss) {
  auto producer = Fill();
  const uint64_t offset = StateOffset(offsetof(State, free_pos));
  Poke64(offset, uint64_t{1} << 20);
  ExpectDataLoss("free_pos", offset, /*open_fails=*/true);
}

TEST_F(ShmRingDamageTest, ClaimPosOutsideTheLiveSlotsIsDataLoss) {
  auto producer = Fill();
  const uint64_t offset = StateOffset(offsetof(State, claim_pos));
  Poke64(offset, kCapacity * 4);
  ExpectDataLoss("claim_pos", offset, /*open_fails=*/true);
}

TEST_F(ShmRingDamageTest, ZeroTotalBytesIsDataLossNotAnEndlessWalk) {
  auto producer = Fill();
  const uint64_t offset = SlotOffset(0, offsetof(SlotHeader, total_bytes));
  Poke64(offset, 0);
  ExpectDataLoss("total_bytes", offset, /*open_fails=*/false);
}

TEST_F(ShmRingDamageTest, TotalBytesBeyondTheCapacityIsDataLoss) {
  auto producer = Fill();
  const uint64_t offset = SlotOffset(0, offsetof(SlotHeader, total_bytes));
  Poke64(offset, kCapacity * 2);
  ExpectDataLoss("total_bytes", offset, /*open_fails=*/false);
}

TEST_F(ShmRingDamageTest, TotalBytesNotAMultipleOf64IsDataLoss) {
  auto producer = Fill();
  const uint64_t offset = SlotOffset(0, offsetof(SlotHeader, total_bytes));
  Poke64(offset, 100);
  ExpectDataLoss("total_bytes", offset, /*open_fails=*/false);
}

TEST_F(ShmRingDamageTest, PayloadBytesBeyondItsSlotIsDataLossNotAnOverRead) {
  auto producer = Fill();
  const uint64_t offset = SlotOffset(0, offsetof(SlotHeader, payload_bytes));
  Poke32(offset, 0x7FFFFFFFu);
  ExpectDataLoss("payload_bytes", offset, /*open_fails=*/false);
}

TEST_F(ShmRingDamageTest, UnknownSlotStateIsDataLoss) {
  auto producer = Fill();
  const uint64_t offset = SlotOffset(0, offsetof(SlotHeader, state));
  Poke32(offset, 99);
  ExpectDataLoss("state", offset, /*open_fails=*/false);
}

TEST_F(ShmRingDamageTest, SlotNamingAnotherPositionIsDataLoss) {
  auto producer = Fill();
  const uint64_t offset = SlotOffset(0, offsetof(SlotHeader, position));
  Poke64(offset, 64 * 1000);
  ExpectDataLoss("position", offset, /*open_fails=*/false);
}

TEST_F(ShmRingDamageTest, DamageToALaterSlotIsFoundWithoutAWrongMessage) {
  auto producer = Fill();
  // Slot 0 holds 100 bytes: 64 + 100 rounded up to 192.
  const uint64_t offset = SlotOffset(192, offsetof(SlotHeader, total_bytes));
  Poke64(offset, 0);
  auto consumer = ShmRing::Open(name_, RingRole::kConsumer);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  // The first Pop may deliver the intact first message or already find the
  // damage (taking it walks on to the next slot); never anything else.
  absl::StatusOr<RingMessage> m = (*consumer)->Pop(kShort);
  if (m.ok()) {
    EXPECT_EQ(m->payload, std::string(100, 'p'));
    m = (*consumer)->Pop(kShort);
  }
  ASSERT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
  EXPECT_NE(m.status().message().find(absl::StrCat("at byte offset ", offset, " ")), std::string::npos)
      << m.status();
}

// Random bytes of State, the journals, the participant table, the producer
// state and the first slot headers (not the mutexes and wake-up words, which
// are not data) are
// overwritten; a fresh consumer, producer and observer then use the ring.
// Any status is fine; a crash, a hang or a sanitizer report is not.
TEST_F(ShmRingDamageTest, RandomDamageToHeaderAndSlotsNeverCrashesOrHangs) {
  auto producer = Fill();
  {
    // Advance free_pos, and leave a taken slot and a pad around.
    auto consumer = ShmRing::Open(name_, RingRole::kConsumer);
    ASSERT_TRUE((*consumer)->Pop(kShort).ok());
    for (int i = 0; i < 40; ++i) producer->TryPush(std::string(1000 + 37 * i, 'q')).IgnoreError();
    for (int i = 0; i < 30; ++i) (*consumer)->TryPop().IgnoreError();
    for (int i = 0; i < 30; ++i) producer->TryPush(std::string(900 + 11 * i, 'r')).IgnoreError();
  }
  const std::string clean = ReadAll();
  // Where live slots start: flip within the next 16 KiB of slot headers too.
  State state;
  std::memcpy(&state, clean.data() + offsetof(SegmentHeader, state), sizeof(state));
  // Two ranges: State to the producer mutex, and the producer state after it.
  const uint64_t header_begin = offsetof(SegmentHeader, state);
  const uint64_t header_gap = offsetof(SegmentHeader, producer_mutex);
  const uint64_t gap_bytes = offsetof(SegmentHeader, producer) - header_gap;
  const uint64_t header_end = sizeof(SegmentHeader);
  const uint64_t slots_begin = kHeaderBytes + state.free_pos % kCapacity;
  std::mt19937_64 rng(20261128);
  constexpr int kCases = 600;
  int errors = 0;
  for (int c = 0; c < kCases; ++c) {
    Poke(0, clean.data(), clean.size());
    const int flips = 1 + static_cast<int>(rng() % 4);
    std::string what;
    for (int f = 0; f < flips; ++f) {
      uint64_t offset;
      if (rng() % 2 == 0) {
        offset = header_begin + rng() % (header_end - header_begin - gap_bytes);
        if (offset >= header_gap) offset += gap_bytes;
      } else {
        offset = slots_begin + rng() % std::min<uint64_t>(16384, kHeaderBytes + kCapacity - slots_begin);
      }
      const char byte = static_cast<char>(rng());
      Poke(offset, &byte, 1);
      absl::StrAppend(&what, " ", offset, "=", static_cast<int>(static_cast<unsigned char>(byte)));
    }
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::alarm(10);  // a hang is a failure, not a stuck test
      int bad = 0;
      auto consumer = ShmRing::Open(name_, RingRole::kConsumer);
      if (consumer.ok()) {
        for (int i = 0; i < 8; ++i) {
          absl::StatusOr<RingMessage> m = (*consumer)->TryPop();
          if (!m.ok()) ++bad;
          if (m.ok() && m->payload.size() > kCapacity) _exit(3);
        }
        ShmRing::MessageView view;
        if ((*consumer)->PopView(&view, absl::ZeroDuration()).ok()) (*consumer)->ReleaseView(view).IgnoreError();
        std::vector<RingMessage> batch;
        (*consumer)->PopBatch(&batch, 16, absl::ZeroDuration()).IgnoreError();
      }
      auto writer = ShmRing::Open(name_, RingRole::kProducer);
      if (writer.ok()) {
        (*writer)->TryPush(std::string(500, 'w')).IgnoreError();
        const std::vector<absl::string_view> small(10, "tiny");
        (*writer)->PushBatch(small, absl::ZeroDuration()).IgnoreError();
      }
      auto observer = ShmRing::Open(name_, RingRole::kObserver);
      if (observer.ok()) {
        (*observer)->Stats();
        (*observer)->Peek(100).status().IgnoreError();
      }
      _exit(bad > 0 ? 1 : 0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "case " << c << " (bytes at offset=value:" << what << ") killed the process "
                                   << "by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0)
                                   << (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (hung)" : "");
    ASSERT_NE(WEXITSTATUS(status), 3) << "case " << c << ": a message larger than the ring";
    if (WEXITSTATUS(status) == 1) ++errors;
  }
  std::printf("%d of %d damaged segments gave errors, none crashed or hung\n", errors, kCases);
}

}  // namespace
}  // namespace moerl
