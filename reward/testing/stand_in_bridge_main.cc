// stand_in_bridge <prompts ring> <trajectories ring> <n_samples>: see
// reward/testing/stand_in_bridge.h. Test-only. Exits 0 at the end of the
// prompt stream, 1 with one line on error, 2 on bad usage.
#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"
#include "reward/testing/stand_in_bridge.h"

int main(int argc, char** argv) {
  uint32_t n_samples = 0;
  if (argc != 4 || !absl::SimpleAtoi(argv[3], &n_samples) || n_samples == 0) {
    std::fprintf(stderr, "usage: stand_in_bridge <prompts ring> <trajectories ring> <n_samples>\n");
    return 2;
  }
  moerl::StandInBridgeReport report;
  const absl::Status status = moerl::RunStandInBridge(argv[1], argv[2], n_samples, &report);
  std::fprintf(stderr, "stand_in_bridge: %lld prompts -> %lld trajectories\n",
               static_cast<long long>(report.prompts),
               static_cast<long long>(report.trajectories));
  if (!status.ok()) {
    std::fprintf(stderr, "stand_in_bridge: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
