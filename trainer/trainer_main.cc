// trainer: computes GRPO advantages for a list of rewards.
// (The MoE trainer arrives with the model and parallelism issues.)
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "trainer/grpo.h"

ABSL_FLAG(std::string, rewards, "", "comma-separated rewards, whole groups");
ABSL_FLAG(int, group_size, 1, "completions per prompt");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<float> rewards;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_rewards), ',')) {
    float value;
    if (!absl::SimpleAtof(part, &value)) {
      std::fprintf(stderr, "trainer: --rewards: \"%s\" is not a number\n",
                   std::string(part).c_str());
      return 2;
    }
    rewards.push_back(value);
  }
  auto advantages = moerl::GroupAdvantages(rewards, absl::GetFlag(FLAGS_group_size), {});
  if (!advantages.ok()) {
    std::fprintf(stderr, "trainer: %s\n", std::string(advantages.status().message()).c_str());
    return 1;
  }
  for (float a : *advantages) std::printf("%.6f\n", a);
  return 0;
}
