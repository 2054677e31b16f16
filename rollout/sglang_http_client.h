// SglangHttpClient: InferenceClient over SGLang's native HTTP API
// (docs/server.md; request and response bodies from
// rollout/sglang_api.h, shared with moerl's own server), driven the way
// AReaL drives it (§2): token ids in, `output_token_logprobs` out,
// `/pause_generation` + `/update_weights_from_disk` + `/continue_generation`.
//
//   MOERL_ASSIGN_OR_RETURN(std::unique_ptr<InferenceClient> c,
//                          MakeSglangHttpClient("127.0.0.1:30000", {}));
//
// Each call opens its own connection (cpp-httplib), so calls from several
// threads never share a socket; Cancel() shuts the sockets of calls in
// flight. Thread-safe.
#ifndef MOERL_ROLLOUT_SGLANG_HTTP_CLIENT_H_
#define MOERL_ROLLOUT_SGLANG_HTTP_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/stage_timing.h"
#include "rollout/inference_client.h"

namespace moerl {

struct HttpClientOptions {
  absl::Duration connect_timeout = absl::Seconds(10);
  // Sent as "Authorization: Bearer <api_key>" when not empty.
  std::string api_key;
  // Optional, borrowed: /generate's JSON encoding and decoding are added to
  // its transport, the tokens generated to its "generated_tokens" count.
  StageTiming* timing = nullptr;
};

// `address` is "host:port" (or "http://host:port"); InvalidArgument when it
// is not.
absl::StatusOr<std::unique_ptr<InferenceClient>> MakeSglangHttpClient(
    const std::string& address, const HttpClientOptions& options);

// "host:port" or "http://host:port[/]" -> host and port.
struct HostPort {
  std::string host;
  int port = 0;
};
absl::StatusOr<HostPort> ParseHostPort(const std::string& address);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_SGLANG_HTTP_CLIENT_H_
