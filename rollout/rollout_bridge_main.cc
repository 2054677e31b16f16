// rollout_bridge: prompts from a ring -> gconfig.n_samples completions each
// from SGLang-API inference servers -> whole groups into a ring, with
// AReaL's staleness control and weight updates from weights/LATEST (see
// rollout/bridge.h, keys in rollout/bridge_settings.h and docs/bridge.md).
//
//   rollout_bridge --config grpo.yaml +rollout.server_addrs=10.0.0.5:30000,10.0.0.6:30000
//   rollout_bridge --config grpo.yaml +rollout.prompt_ring=e.t.prompts
//       +rollout.trajectory_ring=e.t.trajectories +rollout.weights_dir=/runs/e/t/weights
//
// Exits 0 at the end of the prompts (or when stopped by SIGTERM/SIGINT: the
// groups in flight are left unacknowledged for a restart), 1 with one line
// on error.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "common/config/cli.h"
#include "common/status.h"
#include "rollout/bridge_run.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;  // set by SIGTERM/SIGINT
void OnSignal(int) { g_stop = 1; }

absl::Status Main(std::vector<std::string> args, const std::string& argv0) {
  const bool check_only = moerl::TakeFlag("--check_config", &args);
  MOERL_ASSIGN_OR_RETURN(moerl::BridgeSettings settings, moerl::LoadBridgeSettings(args));
  if (check_only) {  // --check_config: the configuration is valid; start nothing
    std::printf("rollout_bridge: configuration accepted\n");
    return absl::OkStatus();
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  moerl::BridgeReport report;
  return moerl::RunBridge(settings, argv0, [] { return g_stop != 0; }, &report);
}
}  // namespace

int main(int argc, char** argv) {
  const absl::Status status = Main(std::vector<std::string>(argv + 1, argv + argc), argv[0]);
  if (!status.ok()) {
    std::fprintf(stderr, "rollout_bridge: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
