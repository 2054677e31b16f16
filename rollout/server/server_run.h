// The inference server binary as library calls: load the configuration,
// resolve the model folder, load the model, serve until told to stop.
//
//   MOERL_ASSIGN_OR_RETURN(ServerSettings settings, LoadServerSettings(args));
//   MOERL_RETURN_IF_ERROR(RunServer(settings, should_stop));
//
// RunServer binds server.host:server.port (0: a free port), prints
// "listening on http://HOST:PORT" on stderr, writes "http://HOST:PORT\n" to
// server.address_file (atomically: a temporary, then rename) when set, and
// serves until should_stop() returns true (polled every 100 ms), then stops
// the HTTP server and aborts whatever still runs. Thread: the caller's.
#ifndef MOERL_ROLLOUT_SERVER_SERVER_RUN_H_
#define MOERL_ROLLOUT_SERVER_SERVER_RUN_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rollout/server/scheduler.h"
#include "rollout/server/server_settings.h"

namespace moerl {

// `--config <yaml> key=value ...` (args without argv[0]) -> validated settings.
absl::StatusOr<ServerSettings> LoadServerSettings(const std::vector<std::string>& args);

// An HF folder (has config.json) as is; a run's weights/ folder (has LATEST)
// -> weights/v<N>. NotFound naming both otherwise.
absl::StatusOr<std::string> ResolveModelFolder(const std::string& path);

SchedulerOptions ToSchedulerOptions(const ServerSettings& settings, const std::string& model_folder);

absl::Status RunServer(const ServerSettings& settings, const std::function<bool()>& should_stop);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_SERVER_SERVER_RUN_H_
