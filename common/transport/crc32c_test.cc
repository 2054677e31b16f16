#include "common/transport/crc32c.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace moerl {
namespace {

using crc32c_internal::ExtendFolding;
using crc32c_internal::ExtendHardware;
using crc32c_internal::ExtendSoftware;
using crc32c_internal::HardwareAvailable;

std::string Bytes(int n, int (*f)(int)) {
  std::string s(n, '\0');
  for (int i = 0; i < n; ++i) s[i] = static_cast<char>(f(i));
  return s;
}

struct Vector {
  std::string input;
  uint32_t crc;
};

// RFC 3720 (iSCSI) appendix B.4 and the classic "123456789" check value.
std::vector<Vector> KnownVectors() {
  return {
      {"", 0x00000000u},
      {"123456789", 0xE3069283u},
      {Bytes(32, [](int) { return 0x00; }), 0x8A9136AAu},
      {Bytes(32, [](int) { return 0xFF; }), 0x62A8AB43u},
      {Bytes(32, [](int i) { return i; }), 0x46DD794Eu},
      {Bytes(32, [](int i) { return 31 - i; }), 0x113FDB5Cu},
  };
}

TEST(Crc32c, SoftwareMatchesRfc3720Vectors) {
  for (const Vector& v : KnownVectors()) {
    EXPECT_EQ(ExtendSoftware(0, v.input.data(), v.input.size()), v.crc)
        << "input of " << v.input.size() << " bytes";
  }
}

TEST(Crc32c, HardwareMatchesRfc3720Vectors) {
  if (!HardwareAvailable()) GTEST_SKIP() << "this CPU has no SSE4.2";
  for (const Vector& v : KnownVectors()) {
    EXPECT_EQ(ExtendHardware(0, v.input.data(), v.input.size()), v.crc)
        << "input of " << v.input.size() << " bytes";
  }
}

TEST(Crc32c, HardwareAndSoftwareAgreeOnEveryLengthAndSplit) {
  if (!HardwareAvailable()) GTEST_SKIP() << "this CPU has no SSE4.2";
  std::mt19937 rng(7);
  std::string data(20000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  // Lengths around the 3 x 1024-byte interleaved blocks of the fast path.
  for (size_t n : {0, 1, 7, 8, 9, 1023, 3071, 3072, 3073, 6144, 6151, 20000}) {
    const uint32_t sw = ExtendSoftware(0, data.data(), n);
    EXPECT_EQ(ExtendHardware(0, data.data(), n), sw) << "length " << n;
    const size_t split = n / 3;
    const uint32_t pieces =
        ExtendHardware(ExtendHardware(0, data.data(), split), data.data() + split, n - split);
    EXPECT_EQ(pieces, sw) << "length " << n << " split at " << split;
  }
}

// ExtendFolding (Crc32cExtendUncached) folds inputs of 256 bytes and more
// with PCLMULQDQ where the CPU has it: every length around its 64-byte steps.
TEST(Crc32c, HardwareAndSoftwareAgreeAroundTheFoldingSteps) {
  if (!HardwareAvailable()) GTEST_SKIP() << "this CPU has no SSE4.2";
  std::mt19937 rng(13);
  std::string data(5000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t n = 200; n <= 1100; ++n) {
    for (size_t shift : {0, 5}) {
      EXPECT_EQ(ExtendFolding(0x89abcdefu, data.data() + shift, n),
                ExtendSoftware(0x89abcdefu, data.data() + shift, n))
          << "length " << n << " shift " << shift;
    }
  }
}

TEST(Crc32c, CopyGivesTheSameBytesAndChecksum) {
  std::mt19937 rng(11);
  std::string data(20000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t n : {0, 1, 13, 64, 255, 511, 512, 513, 3071, 3072, 3075, 9216, 19990}) {
    for (size_t shift : {0, 3}) {
      std::string out(n + shift, '\0');
      const uint32_t crc = Crc32cCopy(&out[shift], data.data() + shift, n);
      EXPECT_EQ(out.substr(shift), data.substr(shift, n)) << "length " << n << " shift " << shift;
      EXPECT_EQ(crc, ExtendSoftware(0, data.data() + shift, n)) << "length " << n << " shift " << shift;
    }
  }
}

TEST(Crc32c, ExtendEqualsWholeBuffer) {
  const std::string a = "hello, ", b = "world";
  EXPECT_EQ(Crc32cExtend(Crc32c(a), b.data(), b.size()), Crc32c(a + b));
  EXPECT_EQ(Crc32cExtendUncached(Crc32c(a), b.data(), b.size()), Crc32c(a + b));
}

TEST(Crc32c, FusedInterleavedCopyEqualsCopyThenCrc) {
  // crc32c_internal::CopyInterleaved: measured against the ring's checksum
  // (ring_checksum_benchmark) and not used, kept correct all the same.
  std::mt19937 rng(11);
  std::string data(10000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t n : {0, 1, 8, 3071, 3072, 3073, 6144, 9999}) {
    std::string out(n, '\0');
    EXPECT_EQ(crc32c_internal::CopyInterleaved(&out[0], data.data(), n), Crc32c(data.substr(0, n))) << n;
    EXPECT_EQ(out, data.substr(0, n)) << n;
  }
}

TEST(Crc32c, SingleBitFlipsChangeTheChecksum) {
  std::string data(64, 'x');
  const uint32_t base = Crc32c(data);
  for (size_t i = 0; i < data.size() * 8; ++i) {
    std::string flipped = data;
    flipped[i / 8] = static_cast<char>(flipped[i / 8] ^ (1 << (i % 8)));
    EXPECT_NE(Crc32c(flipped), base) << "bit " << i;
  }
}

}  // namespace
}  // namespace moerl
