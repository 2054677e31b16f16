// libFuzzer entry point for the allocation_mode parser. Properties: no crash
// or hang on any bytes; every error carries a caret inside the string; and
// everything that parses prints to a canonical form that parses back (also
// under the explicit-backend rule) to the same value and prints identically.
//
//   bazel run --config=fuzz //common/alloc_mode:alloc_mode_fuzz -- -max_total_time=120
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/alloc_mode/alloc_mode.h"

namespace {

void Fail(const char* what, const std::string& input) {
  std::fprintf(stderr, "alloc_mode_fuzz: %s for input '%s'\n", what, input.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1024) return 0;  // long inputs only slow the search down
  const std::string text(reinterpret_cast<const char*>(data), size);
  moerl::ParseOptions strict;
  strict.require_explicit_backend = true;
  (void)moerl::ParseAllocation(text);
  absl::StatusOr<moerl::AllocationMode> mode = moerl::ParseAllocationMode(text);
  if (!mode.ok()) {
    const std::string message(mode.status().message());
    if (message.find('^') == std::string::npos || message.find("fix: ") == std::string::npos) {
      Fail("error without caret or fix", text);
    }
    return 0;
  }
  if (mode->TotalGpus() < 0 || mode->TotalGpus() > moerl::kMaxWorldSize) Fail("bad total", text);
  const std::string printed = moerl::ToString(*mode);
  absl::StatusOr<moerl::AllocationMode> again = moerl::ParseAllocationMode(printed, strict);
  if (!again.ok()) Fail("canonical form does not parse", text);
  if (*again != *mode) Fail("round trip changed the value", text);
  if (moerl::ToString(*again) != printed) Fail("canonical form is not a fixed point", text);
  return 0;
}
