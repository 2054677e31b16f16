// trainer: GRPO (or SFT) training of a Qwen3-MoE policy on one rank, on the
// run folder <cluster.fileroot>/<experiment_name>/<trial_name>/ (see
// trainer/trainer_run.h, keys in trainer/trainer_settings.h and
// docs/trainer.md).
//
//   trainer --config grpo.yaml actor.path=/models/moe
//   trainer --config grpo.yaml trainer.mode=sft trainer.sft_dataset=train.jsonl
//
// Exits 0 when done (or stopped by SIGTERM/SIGINT between steps or while
// waiting for a batch), 1 with one line on error.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "common/config/cli.h"
#include "common/status.h"
#include "trainer/parallel/parallel_state.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/trainer_run.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;  // set by SIGTERM/SIGINT
void OnSignal(int) { g_stop = 1; }

// What RunTrainer stops on when the training allocation uses a dimension the
// trainer does not run yet (tp, cp, pp, etp).
absl::Status LayoutImplemented(const moerl::TrainerSettings& s) {
  if (s.allocation.allocation_mode.empty()) return absl::OkStatus();
  MOERL_ASSIGN_OR_RETURN(moerl::AllocationMode mode, s.allocation.Parse());
  MOERL_ASSIGN_OR_RETURN(moerl::ParallelDims dims, moerl::TrainingDims(mode));
  return moerl::CheckLayoutImplemented(dims);
}

absl::Status Main(std::vector<std::string> args) {
  const bool check_only = moerl::TakeFlag("--check_config", &args);
  MOERL_ASSIGN_OR_RETURN(moerl::TrainerSettings settings, moerl::LoadTrainerSettings(args));
  if (check_only) {  // --check_config: the configuration is valid; start nothing
    std::printf("trainer: configuration accepted\n");
    if (absl::Status layout = LayoutImplemented(settings); !layout.ok()) {
      std::printf("trainer: note: it would stop at start: %s\n", std::string(layout.message()).c_str());
    }
    return absl::OkStatus();
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  moerl::TrainerReport report;
  return moerl::RunTrainer(settings, [] { return g_stop != 0; }, &report);
}
}  // namespace

int main(int argc, char** argv) {
  const absl::Status status = Main(std::vector<std::string>(argv + 1, argv + argc));
  if (!status.ok()) {
    std::fprintf(stderr, "trainer: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
