// Whole-file reads, and a whole-file durable write, with errors that name
// the file and the reason.
//
//   MOERL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, "model config"));
//   // error: "cannot read model config '/m/config.json': No such file or directory"
//   MOERL_RETURN_IF_ERROR(WriteFileSynced(staging + "/manifest.pb", bytes));
//
// The status code follows errno (absl::ErrnoToStatusCode): NotFound for a
// missing file or path component, PermissionDenied for EACCES, and
// FailedPrecondition when `path` is a directory. `what` only words the message
// ("file" by default). Stateless; safe to call from any thread.
#ifndef MOERL_COMMON_FILE_UTIL_H_
#define MOERL_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moerl {

// The bytes of `path`, read in binary mode.
absl::StatusOr<std::string> ReadFileToString(const std::string& path, absl::string_view what = "file");

// The same for `name` relative to the open directory `dir_fd` (openat; a
// reader that pins a directory this way keeps reading it even if it is
// renamed). `shown_path` names the file in errors.
absl::StatusOr<std::string> ReadFileToStringAt(int dir_fd, const std::string& name,
                                               const std::string& shown_path,
                                               absl::string_view what = "file");

// Creates or truncates `path`, writes `bytes` (retrying short writes and
// EINTR) and fsyncs it before returning. Errors name the path and the
// failing step (create, write, fsync), with the code from errno.
absl::Status WriteFileSynced(const std::string& path, absl::string_view bytes);

}  // namespace moerl

#endif  // MOERL_COMMON_FILE_UTIL_H_
