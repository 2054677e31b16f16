// HttpCaller: one JSON-over-HTTP call at a time per caller thread to one
// server, with the error rules of InferenceClient (inference_client.h):
// unreachable / 5xx / timeout -> kUnavailable or kDeadlineExceeded, 4xx ->
// kInvalidArgument, after Cancel() -> kCancelled; messages name the address,
// the path and (shortened) what the server said.
//
//   HttpCaller http(host_port, "10.0.0.5:30000", options);
//   MOERL_ASSIGN_OR_RETURN(std::string body, http.Post("/generate", json, absl::Seconds(60)));
//
// Thread-safe: each call has its own connection; Cancel() stops them all.
#ifndef MOERL_ROLLOUT_HTTP_CALLER_H_
#define MOERL_ROLLOUT_HTTP_CALLER_H_

#include <atomic>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rollout/sglang_http_client.h"

namespace httplib {
class Client;
}  // namespace httplib

namespace moerl {

class HttpCaller {
 public:
  HttpCaller(HostPort host_port, std::string address, HttpClientOptions options)
      : host_port_(std::move(host_port)), address_(std::move(address)),
        options_(std::move(options)) {}

  const std::string& address() const { return address_; }

  // The body of a 2xx answer.
  absl::StatusOr<std::string> Post(const std::string& path, const std::string& json_body,
                                   absl::Duration timeout);
  absl::StatusOr<std::string> Get(const std::string& path, absl::Duration timeout);
  void Cancel();

 private:
  absl::StatusOr<std::string> Call(bool post, const std::string& path, const std::string& body,
                                   absl::Duration timeout);

  const HostPort host_port_;
  const std::string address_;
  const HttpClientOptions options_;
  std::atomic<bool> cancelled_{false};
  absl::Mutex mu_;
  std::set<httplib::Client*> in_flight_ ABSL_GUARDED_BY(mu_);
};

// At most `max` characters of `text`, for error messages.
std::string Shorten(const std::string& text, size_t max = 200);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_HTTP_CALLER_H_
