// Status propagation for moerl.
//
// Library boundaries return absl::Status / absl::StatusOr<T>. The Abseil on
// our machines (20220623) predates ABSL_RETURN_IF_ERROR, so moerl keeps its
// own two macros here, under a project prefix.
//
//   absl::StatusOr<Config> Load(const std::string& path) {
//     MOERL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
//     MOERL_RETURN_IF_ERROR(CheckNotEmpty(text, path));
//     return Parse(text);
//   }
//
// Crash-vs-handle rule: bad input (a malformed row, record, HTTP reply or
// config value) is a Status whose message says what was expected, what was
// found, where, and how to fix it. A broken internal invariant is a
// MOERL_CHECK (common/logging.h). Thread-compatible; no state.
#ifndef MOERL_COMMON_STATUS_H_
#define MOERL_COMMON_STATUS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define MOERL_RETURN_IF_ERROR(expr)                  \
  do {                                               \
    ::absl::Status moerl_status_ = (expr);           \
    if (!moerl_status_.ok()) return moerl_status_;   \
  } while (false)

#define MOERL_STATUS_CONCAT_INNER_(a, b) a##b
#define MOERL_STATUS_CONCAT_(a, b) MOERL_STATUS_CONCAT_INNER_(a, b)

// `lhs = value of expr` if expr (an absl::StatusOr<T>) is OK, else returns its
// status. `lhs` may declare a variable: MOERL_ASSIGN_OR_RETURN(auto x, F());
#define MOERL_ASSIGN_OR_RETURN(lhs, expr)                                     \
  MOERL_ASSIGN_OR_RETURN_IMPL_(MOERL_STATUS_CONCAT_(moerl_statusor_, __LINE__), \
                               lhs, expr)

#define MOERL_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

namespace moerl {

// Prefixes `status`'s message with `context` ("reading batches/0003.rec: ..."),
// keeping its code. OK stays OK.
inline absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace moerl

#endif  // MOERL_COMMON_STATUS_H_
