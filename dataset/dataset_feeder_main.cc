// dataset_feeder: GSM8K jsonl -> Prompt messages (see dataset/feeder_run.h,
// keys in dataset/feeder_settings.h and docs/config.md).
//
//   dataset_feeder --config grpo.yaml dataset.ring=exp1.trial0.prompts
//   dataset_feeder --config grpo.yaml dataset.output_path=prompts.rec total_train_epochs=2
//   dataset_feeder --config grpo.yaml dataset.print_gold=true   # gold answers, one per line
//
// Exits 0 when done (or stopped by SIGTERM/SIGINT, logging where to resume),
// 1 with one line on error.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "common/config/cli.h"
#include "common/status.h"
#include "dataset/feeder_run.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;  // set by SIGTERM/SIGINT
void OnSignal(int) { g_stop = 1; }

absl::Status Main(std::vector<std::string> args, const std::string& argv0) {
  const bool check_only = moerl::TakeFlag("--check_config", &args);
  MOERL_ASSIGN_OR_RETURN(moerl::FeederSettings settings, moerl::LoadFeederSettings(args));
  if (check_only) {  // --check_config: the configuration is valid; start nothing
    std::printf("dataset_feeder: configuration accepted\n");
    return absl::OkStatus();
  }
  MOERL_ASSIGN_OR_RETURN(moerl::Tokenizer tokenizer,
                         moerl::LoadPromptTokenizer(settings.TokenizerPath(), argv0));
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  moerl::FeederReport report;
  return moerl::RunFeeder(settings, tokenizer, [] { return g_stop != 0; }, &report);
}
}  // namespace

int main(int argc, char** argv) {
  const absl::Status status = Main(std::vector<std::string>(argv + 1, argv + argc), argv[0]);
  if (!status.ok()) {
    std::fprintf(stderr, "dataset_feeder: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
