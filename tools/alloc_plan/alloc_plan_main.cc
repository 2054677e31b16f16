// alloc_plan: does an allocation fit, and what does it cost per GPU?
//   bazel run //tools:alloc_plan -- --config grpo.yaml [--json] [key=value ...]
// Exit 0: the plan has no problems; 1: bad input or a problem (message on stderr).
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "tools/alloc_plan/plan.h"

int main(int argc, char** argv) {
  // Under `bazel run`, resolve relative paths against the user's directory.
  if (const char* dir = std::getenv("BUILD_WORKING_DIRECTORY")) {
    if (chdir(dir) != 0) std::cerr << "alloc_plan: cannot enter " << dir << "\n";
  }
  const std::vector<std::string> args(argv + 1, argv + argc);
  const absl::Status status = moerl::RunAllocPlan(args, std::cout);
  if (!status.ok()) {
    std::cout.flush();
    std::cerr << "alloc_plan: " << status.message() << "\n";
    return 1;
  }
  return 0;
}
