// Scoring throughput of the C++ verifier on the agreement corpus.
// tools/gsm8k/bench_reward.py runs this and math-verify on the same corpus in
// the same run and prints the ratio (docs/performance.md, "GSM8K"):
//   bazel build -c opt //reward:reward_bench
//   python3 tools/gsm8k/bench_reward.py --bench bazel-bin/reward/reward_bench
//       --corpus reward/testdata/reward_corpus.jsonl
// Prints one line: "completions=N seconds=S per_second=R matches=M".
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "reward/answer.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: reward_bench <corpus.jsonl> [repeats]\n");
    return 2;
  }
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 20;
  std::ifstream in(argv[1]);
  std::vector<std::pair<std::string, std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json row = nlohmann::json::parse(line);
    rows.emplace_back(row["completion"].get<std::string>(), row["gold"].get<std::string>());
  }
  if (rows.empty()) {
    std::fprintf(stderr, "reward_bench: no rows in %s\n", argv[1]);
    return 1;
  }
  int64_t matches = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < repeats; ++r) {
    for (const auto& [completion, gold] : rows) {
      matches += moerl::ScoreCompletion(completion, gold).reason == moerl::ScoreReason::kMatch;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double n = static_cast<double>(rows.size()) * repeats;
  std::printf("completions=%.0f seconds=%.4f per_second=%.1f matches=%lld\n", n, seconds,
              n / seconds, static_cast<long long>(matches));
  return 0;
}
