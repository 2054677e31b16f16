// pipeline_plan: prints, as shell assignments, what tools/pipeline/pipeline.sh starts
// for a configuration (tools/pipeline/pipeline_plan.h).
//
//   eval "$(pipeline_plan --config grpo.yaml seed=3)"
//
// Exits 0, or 1 with one line naming the bad key.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "tools/pipeline/pipeline_plan.h"

int main(int argc, char** argv) {
  const absl::StatusOr<moerl::PipelinePlan> plan =
      moerl::LoadPipelinePlan(std::vector<std::string>(argv + 1, argv + argc));
  if (!plan.ok()) {
    std::fprintf(stderr, "pipeline: %s\n", std::string(plan.status().message()).c_str());
    return 1;
  }
  std::cout << moerl::ShellAssignments(*plan);
  return 0;
}
