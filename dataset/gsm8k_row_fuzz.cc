// libFuzzer target: the GSM8K jsonl row parser must return a Status, never
// crash, on any bytes; an accepted row has a non-empty gold answer.
//   bazel run --config=fuzz //dataset:gsm8k_row_fuzz -- -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "dataset/gsm8k.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view line(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<moerl::Gsm8kRow> row = moerl::ParseGsm8kRow(line, "fuzz.jsonl", 1);
  if (row.ok() && (row->gold_answer.empty() || row->answer.find("####") == std::string::npos)) {
    std::abort();
  }
  if (!row.ok() && row.status().message().rfind("fuzz.jsonl:1: ", 0) != 0) std::abort();
  return 0;
}
