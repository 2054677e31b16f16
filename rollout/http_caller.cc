#include "rollout/http_caller.h"

#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "httplib.h"

namespace moerl {

std::string Shorten(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return absl::StrCat(text.substr(0, max), "... (", text.size(), " bytes)");
}

absl::StatusOr<HostPort> ParseHostPort(const std::string& address) {
  absl::string_view rest = address;
  absl::ConsumePrefix(&rest, "http://");
  absl::ConsumeSuffix(&rest, "/");
  const size_t colon = rest.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(rest.substr(colon + 1), &port) || port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server address '", address, "' is not host:port (for example 127.0.0.1:30000)"));
  }
  HostPort result;
  result.host = std::string(rest.substr(0, colon));
  result.port = port;
  return result;
}

absl::StatusOr<std::string> HttpCaller::Post(const std::string& path, const std::string& json_body,
                                             absl::Duration timeout) {
  return Call(true, path, json_body, timeout);
}

absl::StatusOr<std::string> HttpCaller::Get(const std::string& path, absl::Duration timeout) {
  return Call(false, path, "", timeout);
}

void HttpCaller::Cancel() {
  cancelled_ = true;
  absl::MutexLock lock(&mu_);
  for (httplib::Client* client : in_flight_) client->stop();
}

absl::StatusOr<std::string> HttpCaller::Call(bool post, const std::string& path,
                                             const std::string& body, absl::Duration timeout) {
  const std::string what = absl::StrCat(post ? "POST " : "GET ", path, " to ", address_);
  if (cancelled_) return absl::CancelledError(absl::StrCat(what, ": cancelled"));
  httplib::Client client(host_port_.host, host_port_.port);
  const int64_t connect_us = absl::ToInt64Microseconds(options_.connect_timeout);
  const int64_t timeout_us = std::max<int64_t>(1, absl::ToInt64Microseconds(timeout));
  client.set_connection_timeout(connect_us / 1000000, connect_us % 1000000);
  client.set_read_timeout(timeout_us / 1000000, timeout_us % 1000000);
  client.set_write_timeout(timeout_us / 1000000, timeout_us % 1000000);
  client.set_keep_alive(false);
  httplib::Headers headers;
  if (!options_.api_key.empty()) {
    headers.emplace("Authorization", absl::StrCat("Bearer ", options_.api_key));
  }
  {
    absl::MutexLock lock(&mu_);
    in_flight_.insert(&client);
  }
  const absl::Time start = absl::Now();
  httplib::Result result = post ? client.Post(path.c_str(), headers, body, "application/json")
                                : client.Get(path.c_str(), headers);
  {
    absl::MutexLock lock(&mu_);
    in_flight_.erase(&client);
  }
  if (cancelled_) return absl::CancelledError(absl::StrCat(what, ": cancelled"));
  if (!result) {
    const httplib::Error error = result.error();
    const bool timed_out = error == httplib::Error::Read || error == httplib::Error::Write ||
                           error == httplib::Error::ConnectionTimeout;
    if (timed_out && absl::Now() - start >= timeout) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": no answer within ",
                                                      absl::FormatDuration(timeout),
                                                      " (rollout.request_timeout)"));
    }
    return absl::UnavailableError(absl::StrCat(what, " failed: ", httplib::to_string(error)));
  }
  const int code = result->status;
  if (code >= 200 && code < 300) return std::move(result->body);
  const std::string said = absl::StrCat(what, " answered HTTP ", code, ": ", Shorten(result->body));
  if (code >= 400 && code < 500 && code != 408 && code != 429) {
    return absl::InvalidArgumentError(said);
  }
  return absl::UnavailableError(said);
}

}  // namespace moerl
