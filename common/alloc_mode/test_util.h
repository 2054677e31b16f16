// Test helpers for allocation_mode errors: where the caret points and what
// the first line says.
//
//   EXPECT_EQ(CaretColumn(status), 7);
//   EXPECT_THAT(std::string(status.message()), HasSubstr("FSDP backend"));
//
// Test-only; pure functions.
#ifndef MOERL_COMMON_ALLOC_MODE_TEST_UTIL_H_
#define MOERL_COMMON_ALLOC_MODE_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"

namespace moerl {

// Column of '^' under the echoed string (0 = first byte), or -1.
inline int CaretColumn(const absl::Status& status) {
  const std::vector<std::string> lines = absl::StrSplit(status.message(), '\n');
  if (lines.size() < 4) return -1;
  const size_t caret = lines[2].find('^');
  if (caret == std::string::npos || caret < 2) return -1;
  return static_cast<int>(caret) - 2;
}

// The "fix: ..." line, without its prefix.
inline std::string FixLine(const absl::Status& status) {
  const std::vector<std::string> lines = absl::StrSplit(status.message(), '\n');
  if (lines.size() < 4) return "";
  const std::string prefix = "  fix: ";
  return lines[3].rfind(prefix, 0) == 0 ? lines[3].substr(prefix.size()) : "";
}

}  // namespace moerl

#endif  // MOERL_COMMON_ALLOC_MODE_TEST_UTIL_H_
