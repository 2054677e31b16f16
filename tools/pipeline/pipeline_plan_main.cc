// pipeline_plan: prints, as shell assignments, what tools/pipeline/pipeline.sh starts
// for a configuration (tools/pipeline/pipeline_plan.h).
//
//   eval "$(pipeline_plan --config grpo.yaml seed=3)"
//   pipeline_plan --write_config --config grpo.yaml seed=3   # <run_dir>/config.yaml
//
// Exits 0, or 1 with one line naming the bad key.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "common/config/cli.h"
#include "tools/pipeline/pipeline_plan.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (moerl::TakeFlag("--write_config", &args)) {
    const absl::Status written = moerl::WriteRunConfig(args);
    if (written.ok()) return 0;
    std::fprintf(stderr, "pipeline: %s\n", std::string(written.message()).c_str());
    return 1;
  }
  const absl::StatusOr<moerl::PipelinePlan> plan = moerl::LoadPipelinePlan(args);
  if (!plan.ok()) {
    std::fprintf(stderr, "pipeline: %s\n", std::string(plan.status().message()).c_str());
    return 1;
  }
  std::cout << moerl::ShellAssignments(*plan);
  return 0;
}
