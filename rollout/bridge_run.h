// The rollout_bridge binary as library calls: load the configuration, the
// tokenizer (to decode output_text, which the scorer reads), open the rings
// and the server clients, run the bridge.
//
//   MOERL_ASSIGN_OR_RETURN(BridgeSettings settings, LoadBridgeSettings(args));
//   BridgeReport report;
//   MOERL_RETURN_IF_ERROR(RunBridge(settings, argv0, should_stop, &report));
//
// The rings must exist (the pipeline script creates them); the prompt ring
// is consumed in whatever delivery mode it was created with. Thread: the
// caller's (the bridge starts its own).
#ifndef MOERL_ROLLOUT_BRIDGE_RUN_H_
#define MOERL_ROLLOUT_BRIDGE_RUN_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rollout/bridge.h"
#include "rollout/bridge_settings.h"

namespace moerl {

// `--config <yaml> key=value ...` (args without argv[0]) -> validated settings.
absl::StatusOr<BridgeSettings> LoadBridgeSettings(const std::vector<std::string>& args);

absl::Status RunBridge(const BridgeSettings& settings, const std::string& argv0,
                       const std::function<bool()>& should_stop, BridgeReport* report);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_BRIDGE_RUN_H_
