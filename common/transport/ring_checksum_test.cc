#include "common/transport/ring_checksum.h"

#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/transport/crc32c.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ring_checksum_internal::Checksum;
using ring_checksum_internal::Kernel;
using ring_checksum_internal::KernelAvailable;
using ring_checksum_internal::KernelName;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::vector<Kernel> Kernels() {
  std::vector<Kernel> out;
  for (Kernel k : {Kernel::kScalar, Kernel::kSse2, Kernel::kAvx2}) {
    if (KernelAvailable(k)) out.push_back(k);
  }
  return out;
}

TEST(RingChecksum, EveryKernelGivesTheScalarValueOnEveryLengthAndAlignment) {
  // Unaligned inputs (offsets 0..7 and 33), lengths 0..300, and large ones.
  const std::string data = RandomBytes(70000, 1);
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 300; ++n) lengths.push_back(n);
  for (size_t n : {1023, 1024, 4095, 4096, 4097, 65536, 65537, 69000}) lengths.push_back(n);
  std::vector<char> dst(70100);
  for (Kernel k : Kernels()) {
    for (size_t offset : {0, 1, 2, 3, 5, 7, 33}) {
      for (size_t n : lengths) {
        const char* src = data.data() + offset;
        const uint64_t want = Checksum(Kernel::kScalar, nullptr, src, n);
        EXPECT_EQ(Checksum(k, nullptr, src, n), want) << KernelName(k) << " length " << n << " offset " << offset;
        std::memset(dst.data(), 0, n + 80);
        // Copy into a differently misaligned destination.
        char* out = dst.data() + (offset * 3 + 1) % 64;
        EXPECT_EQ(ring_checksum_internal::ChecksumBlockCopy(k, out, src, n), want) << KernelName(k) << " block copy " << n;
        ASSERT_EQ(std::memcmp(out, src, n), 0) << KernelName(k) << " block copy of " << n << " bytes differs";
        std::memset(dst.data(), 0, n + 80);
        EXPECT_EQ(Checksum(k, out, src, n), want) << KernelName(k) << " copy, length " << n;
        ASSERT_EQ(std::memcmp(out, src, n), 0) << KernelName(k) << " copy of " << n << " bytes differs";
        EXPECT_EQ(out[n], 0) << KernelName(k) << " wrote past " << n << " bytes";
      }
    }
  }
}

TEST(RingChecksum, IsTaggedCrc32cBelow256BytesAndTheHashFrom256) {
  const std::string data = RandomBytes(40000, 2);
  std::string copy(data.size(), '\0');
  // Around the CRC/hash boundary and the SSE2/AVX2 one (16 KiB).
  for (size_t n : {0, 1, 63, 64, 65, 255, 256, 257, 4999, 16383, 16384, 39999}) {
    const uint64_t want = n < 256 ? (uint64_t{0x43524332} << 32) | Crc32c(data.substr(0, n))
                                  : Checksum(Kernel::kScalar, nullptr, data.data(), n);
    EXPECT_EQ(RingChecksum(data.data(), n), want) << n;
    EXPECT_EQ(RingChecksumCopy(&copy[0], data.data(), n), want) << n;
    EXPECT_EQ(copy.substr(0, n), data.substr(0, n));
  }
}

TEST(RingChecksum, KnownValuesAreStable) {
  // Pins the definition: a change of constants or algorithm must bump the
  // ShmRing segment layout version. The values come from an independent
  // Python implementation of the definition (tools/ring/ring_checksum_reference.py).
  std::string counting(300, '\0');
  for (size_t i = 0; i < counting.size(); ++i) counting[i] = static_cast<char>(i);
  for (Kernel k : Kernels()) {
    EXPECT_EQ(Checksum(k, nullptr, "", 0), 0x53866163C0BA6717ull) << KernelName(k) << ", hash of nothing";
    EXPECT_EQ(Checksum(k, nullptr, counting.data(), 200), 0x2215A745AB1646D8ull) << KernelName(k);
  }
  EXPECT_EQ(RingChecksum("123456789", 9), 0x43524332E3069283ull);
  EXPECT_EQ(RingChecksum(counting.data(), 300), 0xF9503B7DDC2A54ADull);
}

TEST(RingChecksum, DetectsEverySingleBitFlipAtEveryOffsetOfSmallPayloads) {
  for (size_t n : {1, 7, 8, 63, 64, 65, 130, 300}) {
    std::string data = RandomBytes(n, static_cast<uint32_t>(n));
    for (Kernel k : Kernels()) {
      const uint64_t clean = Checksum(k, nullptr, data.data(), n);
      int missed = 0;
      for (size_t byte = 0; byte < n; ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
          data[byte] = static_cast<char>(data[byte] ^ (1 << bit));
          if (Checksum(k, nullptr, data.data(), n) == clean) ++missed;
          data[byte] = static_cast<char>(data[byte] ^ (1 << bit));
        }
      }
      EXPECT_EQ(missed, 0) << KernelName(k) << ": " << missed << " single-bit flips undetected in " << n << " bytes";
    }
    const uint64_t clean = RingChecksum(data.data(), n);
    int missed = 0;
    for (size_t bit = 0; bit < 8 * n; ++bit) {
      data[bit / 8] = static_cast<char>(data[bit / 8] ^ (1 << (bit % 8)));
      if (RingChecksum(data.data(), n) == clean) ++missed;
      data[bit / 8] = static_cast<char>(data[bit / 8] ^ (1 << (bit % 8)));
    }
    EXPECT_EQ(missed, 0) << "RingChecksum: " << missed << " single-bit flips undetected in " << n << " bytes";
  }
}

TEST(RingChecksum, DetectsSwappedStripesZeroPaddingAndLength) {
  std::string data = RandomBytes(256, 9);
  const uint64_t clean = RingChecksum(data.data(), data.size());
  std::string swapped = data.substr(64, 64) + data.substr(0, 64) + data.substr(128);
  EXPECT_NE(RingChecksum(swapped.data(), swapped.size()), clean) << "64-byte stripes swapped";
  // A tail padded with zeros is not the same as a longer input of zeros.
  const std::string zeros(64, '\0');
  EXPECT_NE(RingChecksum(zeros.data(), 10), RingChecksum(zeros.data(), 11));
  EXPECT_NE(RingChecksum(zeros.data(), 0), RingChecksum(zeros.data(), 64));
}

TEST(RingChecksum, DistinctOnManyRandomPayloads) {
  std::set<uint64_t> seen;
  for (uint32_t i = 0; i < 20000; ++i) {
    const std::string data = RandomBytes(1 + i % 400, i);
    seen.insert(RingChecksum(data.data(), data.size()));
  }
  // Duplicate inputs (1-byte ones repeat) aside, no collisions expected.
  EXPECT_GT(seen.size(), 19900u);
}

}  // namespace
}  // namespace moerl
