// Logging and invariant checks for moerl binaries and libraries.
//
// The Abseil on our machines (20220623) has no absl/log yet, so this is a
// small stream logger of our own, writing one line per message to stderr:
//
//   I1128 10:02:03.123456 feeder.cc:42] published 128 prompts
//
//   MOERL_LOG(INFO) << "published " << n << " prompts";
//   MOERL_CHECK(offset <= size) << "offset " << offset;   // aborts if false
//
// MOERL_CHECK is for broken internal invariants only; bad input is a Status
// (see common/status.h). Thread-safe: each message is written with a single
// write(2) call, so lines from several threads do not interleave.
#ifndef MOERL_COMMON_LOGGING_H_
#define MOERL_COMMON_LOGGING_H_

#include <sstream>

namespace moerl {

enum class LogSeverity { kInfo, kWarning, kError, kFatal };

// Messages below this severity are dropped. Default kInfo; binaries may raise
// it (for example from a --quiet flag).
void SetMinLogSeverity(LogSeverity severity);
LogSeverity MinLogSeverity();

namespace logging_internal {

class LogMessage {
 public:
  LogMessage(const char* file, int line, LogSeverity severity);
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  // Writes the line; aborts the process after a kFatal message.
  ~LogMessage();

  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// Turns `stream` expressions into void so that they can sit in a ternary.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace logging_internal
}  // namespace moerl

#define MOERL_LOG_SEVERITY_INFO ::moerl::LogSeverity::kInfo
#define MOERL_LOG_SEVERITY_WARNING ::moerl::LogSeverity::kWarning
#define MOERL_LOG_SEVERITY_ERROR ::moerl::LogSeverity::kError
#define MOERL_LOG_SEVERITY_FATAL ::moerl::LogSeverity::kFatal

#define MOERL_LOG(severity)                                                   \
  (MOERL_LOG_SEVERITY_##severity < ::moerl::MinLogSeverity())                 \
      ? (void)0                                                               \
      : ::moerl::logging_internal::Voidify() &                                \
            ::moerl::logging_internal::LogMessage(__FILE__, __LINE__,         \
                                                  MOERL_LOG_SEVERITY_##severity) \
                .stream()

#define MOERL_CHECK(condition)                                                \
  (condition) ? (void)0                                                       \
              : ::moerl::logging_internal::Voidify() &                        \
                    ::moerl::logging_internal::LogMessage(                    \
                        __FILE__, __LINE__, ::moerl::LogSeverity::kFatal)     \
                            .stream()                                         \
                        << "Check failed: " #condition " "

#endif  // MOERL_COMMON_LOGGING_H_
