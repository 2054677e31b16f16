// rollout_bridge: samples tokens from a row of logits with the engine's
// sampler. (The bridge to inference servers arrives with the rollout issue.)
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "rollout/sampling.h"

ABSL_FLAG(std::string, logits, "", "comma-separated logits");
ABSL_FLAG(float, temperature, 1.0f, "sampling temperature (0 = greedy)");
ABSL_FLAG(int, samples, 1, "tokens to sample");
ABSL_FLAG(uint64_t, seed, 0, "random seed");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<float> logits;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_logits), ',')) {
    float value;
    if (!absl::SimpleAtof(part, &value)) {
      std::fprintf(stderr, "rollout_bridge: --logits: \"%s\" is not a number\n",
                   std::string(part).c_str());
      return 2;
    }
    logits.push_back(value);
  }
  std::seed_seq seed{absl::GetFlag(FLAGS_seed)};
  absl::BitGen rng(seed);
  for (int i = 0; i < absl::GetFlag(FLAGS_samples); ++i) {
    auto sampled =
        moerl::SampleToken(logits, {.temperature = absl::GetFlag(FLAGS_temperature)}, rng);
    if (!sampled.ok()) {
      std::fprintf(stderr, "rollout_bridge: %s\n", std::string(sampled.status().message()).c_str());
      return 1;
    }
    std::printf("token=%d logprob=%.6f\n", sampled->token, sampled->logprob);
  }
  return 0;
}
