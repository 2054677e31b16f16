// libFuzzer entry point for RecordReader: any bytes, in strict and in
// recovery mode, must give records or a Status, never a crash, and the
// reader must stop (no record is returned past the input's end).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/transport/record_io.h"

namespace {

void ReadAll(const uint8_t* data, size_t size, bool recover) {
  moerl::RecordReader::Options options;
  options.recover_truncated_tail = recover;
  auto reader = moerl::RecordReader::FromString(
      "fuzz.rec", std::string(reinterpret_cast<const char*>(data), size), options);
  if (!reader.ok()) return;
  std::string record;
  uint64_t total = 0;
  for (int i = 0; i <= static_cast<int>(size); ++i) {
    absl::StatusOr<bool> more = (*reader)->Next(&record);
    if (!more.ok() || !*more) return;
    total += record.size() + moerl::kRecordFrameBytes;
    // Invariant: every byte of a returned record came from the input.
    if (total > size) std::abort();
  }
  std::abort();  // more records than bytes: the reader failed to advance
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ReadAll(data, size, /*recover=*/false);
  ReadAll(data, size, /*recover=*/true);
  return 0;
}
