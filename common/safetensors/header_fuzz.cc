// Fuzzes the safetensors header parser: any byte string must yield a header or
// a Status, never a crash, and accepted headers must stay inside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/safetensors/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto header = moerl::ParseSafetensorsHeader({data, size}, "fuzz");
  if (!header.ok()) return 0;
  for (const moerl::TensorInfo& t : header->tensors) {
    if (header->buffer_offset + t.end > size) std::abort();
  }
  return 0;
}
