// reward_scorer: scores Trajectory messages and writes TrajectoryBatch record
// files (see reward/scorer_run.h; keys in reward/scorer_settings.h and
// docs/config.md), or scores one completion.
//
//   reward_scorer --config grpo.yaml reward.ring=exp1.trial0.trajectories
//   reward_scorer --config grpo.yaml reward.input_path=t.rec reward.output_dir=run/batches
//   reward_scorer --completion 'so \boxed{18}' --gold 18      # prints "reward=1 reason=match"
//   reward_scorer --completion '\boxed{18 dollars}' --gold 18 --lenient_units   # reward=1
//
// Exits 0 when done (or stopped by SIGTERM/SIGINT), 1 with one line on error.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "common/config/cli.h"
#include "common/status.h"
#include "reward/answer.h"
#include "reward/scorer_run.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;  // set by SIGTERM/SIGINT
void OnSignal(int) { g_stop = 1; }

absl::Status Main(std::vector<std::string> args) {
  const bool lenient = args.size() == 5 && args[4] == "--lenient_units";
  if ((args.size() == 4 || lenient) && args[0] == "--completion" && args[2] == "--gold") {
    const moerl::Score score = moerl::ScoreCompletion(
        args[1], args[3], lenient ? moerl::UnitRule::kLenient : moerl::UnitRule::kMathVerify);
    std::printf("reward=%g reason=%s\n", score.reward, moerl::ScoreReasonName(score.reason));
    return absl::OkStatus();
  }
  const bool check_only = moerl::TakeFlag("--check_config", &args);
  MOERL_ASSIGN_OR_RETURN(moerl::ScorerRunOptions options, moerl::LoadScorerRunOptions(args));
  if (check_only) {  // --check_config: the configuration is valid; start nothing
    std::printf("reward_scorer: configuration accepted\n");
    return absl::OkStatus();
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  moerl::ScorerReport report;
  return moerl::RunScorer(options, [] { return g_stop != 0; }, &report);
}
}  // namespace

int main(int argc, char** argv) {
  const absl::Status status = Main(std::vector<std::string>(argv + 1, argv + argc));
  if (!status.ok()) {
    std::fprintf(stderr, "reward_scorer: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
