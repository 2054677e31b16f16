// RingChecksum: the 64-bit checksum ShmRing stores with every payload, its
// guard against stray writes into the shared segment. Record files keep
// CRC32C (crc32c.h); the ring's checksum never leaves the segment, so it is
// free to be the one that is cheapest to fuse with the copy.
//
//   uint64_t sum = RingChecksumCopy(slot_payload, message.data(), message.size());
//   ...
//   if (RingChecksum(slot_payload, size) != sum) { /* DataLoss */ }
//
// Definition (version 1; the segment layout version names it). Payloads
// under 256 bytes: CRC32C (crc32c.h) in the low 32 bits, 0x43524332 in the
// high 32 (there `crc32` is cheaper than the hash's fixed cost). From 256
// bytes, the hash: the input is cut into 64-byte stripes, the last one zero-padded. Eight 64-bit lanes
// acc[0..7] start at fixed constants; stripe s (from 0) with 64-bit words
// w[0..7] (little-endian) does, for each lane i, with the lane key
// k = kKey[i] + s * kStep[i]:
//
//   x = w[i] ^ k;   acc[i] += lo32(x) * hi32(x);   acc[i ^ 1] += w[i];
//
// (all mod 2^64), then h = size * P1 + seed; for each i:
// h = rotl((h ^ acc[i]) * P2, 31); the result is fmix64(h) (MurmurHash3's
// finaliser). Every step after the lane sums is a bijection of each single
// lane, and any change of one word changes acc[i ^ 1] by a non-zero amount,
// so a single changed word is missed only if its change to acc[i] exactly
// cancels it in the end (about 2^-64); the position-dependent key makes
// swapped stripes change the sum. It is not a CRC: it detects stray writes
// and torn copies, not adversaries.
//
// Kernels: AVX2 (4 lanes a register), SSE2 (2 lanes, every x86-64) and
// portable scalar code give identical results (ring_checksum_test); AVX2
// is used from 16 KiB where the CPU has it (checked once, cached), SSE2
// below (a 256-bit kernel called now and then stalls ~0.7 us per call). Fused with a
// copy (RingChecksumCopy) it reads each byte once, from the register the copy
// loaded. Thread-safe, no state beyond the cached CPU check.
#ifndef MOERL_COMMON_TRANSPORT_RING_CHECKSUM_H_
#define MOERL_COMMON_TRANSPORT_RING_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

namespace moerl {

// The checksum of data[0, size): CRC32C below 256 bytes, else the hash.
uint64_t RingChecksum(const void* data, size_t size);

// Copies src[0, size) to dst (no overlap) and returns RingChecksum of the bytes.
uint64_t RingChecksumCopy(void* dst, const void* src, size_t size);

namespace ring_checksum_internal {

enum class Kernel { kScalar, kSse2, kAvx2 };
bool KernelAvailable(Kernel kernel);
// The kernel RingChecksum uses on this CPU.
Kernel BestKernel();
const char* KernelName(Kernel kernel);
// The hash alone, at every size (RingChecksum from 256 bytes). Require
// KernelAvailable(kernel). `dst` null: checksum only.
uint64_t Checksum(Kernel kernel, void* dst, const void* src, size_t size);
// The same value; copies with memcpy 4 KiB at a time and checksums each
// block from the destination (while in L1) instead of one fused pass.
uint64_t ChecksumBlockCopy(Kernel kernel, void* dst, const void* src, size_t size);

}  // namespace ring_checksum_internal
}  // namespace moerl

#endif  // MOERL_COMMON_TRANSPORT_RING_CHECKSUM_H_
