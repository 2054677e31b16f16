// server: SGLang's native HTTP API on moerl's generation engine (see
// rollout/server/server_run.h, keys in server_settings.h and docs/server.md).
//
//   server --config grpo.yaml actor.path=/run/weights server.port=30000
//   server actor.path=trainer/model/testdata/moe server.address_file=/tmp/addr
//
// Exits 0 when stopped by SIGTERM/SIGINT, 1 with one line on error.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "common/config/cli.h"
#include "common/status.h"
#include "rollout/server/server_run.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;  // set by SIGTERM/SIGINT
void OnSignal(int) { g_stop = 1; }

absl::Status Main(std::vector<std::string> args) {
  const bool check_only = moerl::TakeFlag("--check_config", &args);
  MOERL_ASSIGN_OR_RETURN(moerl::ServerSettings settings, moerl::LoadServerSettings(args));
  if (check_only) {  // --check_config: the configuration is valid; start nothing
    std::printf("server: configuration accepted\n");
    return absl::OkStatus();
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  return moerl::RunServer(settings, [] { return g_stop != 0; });
}
}  // namespace

int main(int argc, char** argv) {
  const absl::Status status = Main(std::vector<std::string>(argv + 1, argv + argc));
  if (!status.ok()) {
    std::fprintf(stderr, "server: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
