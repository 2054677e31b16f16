// CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78): the
// checksum of record files. (Shared-memory ring payloads use RingChecksum,
// ring_checksum.h, which is cheaper to fuse with a copy.)
//
//   uint32_t crc = Crc32c(payload);                  // whole buffer
//   uint32_t c = Crc32cExtend(0, a.data(), a.size()); // or in pieces:
//   c = Crc32cExtend(c, b.data(), b.size());          // == Crc32c(a + b)
//
// Crc32c uses the SSE4.2 `crc32` instruction when the CPU has it (checked
// once per call through a cached cpuid flag) and a slicing-by-8 table
// otherwise; both give identical results (crc32c_test checks them against
// the RFC 3720 vectors and against each other). Thread-safe, no state
// beyond constant tables.
#ifndef MOERL_COMMON_TRANSPORT_CRC32C_H_
#define MOERL_COMMON_TRANSPORT_CRC32C_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace moerl {

// Continues `crc` (the CRC32C of the bytes so far; 0 for none) over
// data[0, size).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);

inline uint32_t Crc32c(absl::string_view bytes) {
  return Crc32cExtend(0, bytes.data(), bytes.size());
}

// Copies src[0, size) to dst (no overlap) and returns the CRC32C of the
// bytes, reading them once: for large messages the checksum then hides
// under the memory traffic of the copy.
uint32_t Crc32cCopy(void* dst, const void* src, size_t size);

// Same value as Crc32cExtend, faster for long data that is not in this
// core's caches (a payload another process just wrote into shared memory):
// carry-less multiplication folding keeps more loads in flight. On data in
// L1/L2, Crc32cExtend is faster (measured on AMD EPYC: ~13 GB/s against ~7;
// from L3, ~2.5 GB/s against ~6).
uint32_t Crc32cExtendUncached(uint32_t crc, const void* data, size_t size);

namespace crc32c_internal {
// The two implementations, exposed for tests and benchmarks.
uint32_t ExtendSoftware(uint32_t crc, const void* data, size_t size);
// Requires HardwareAvailable().
uint32_t ExtendHardware(uint32_t crc, const void* data, size_t size);
// PCLMULQDQ folding for 256 bytes and more, then ExtendHardware's streams.
uint32_t ExtendFolding(uint32_t crc, const void* data, size_t size);
bool HardwareAvailable();
uint32_t CopyHardware(void* dst, const void* src, size_t size);
// Copy and CRC in one pass over 8-byte words (three interleaved streams).
uint32_t CopyInterleaved(void* dst, const void* src, size_t size);
}  // namespace crc32c_internal

}  // namespace moerl

#endif  // MOERL_COMMON_TRANSPORT_CRC32C_H_
