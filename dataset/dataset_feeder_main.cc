// dataset_feeder: GSM8K jsonl -> Prompt messages (see dataset/feeder_run.h).
//
//   dataset_feeder --input train.jsonl --output prompts.rec --epochs 10 --batch_size 256
//   dataset_feeder --input sample.jsonl --print_gold      # gold answers, one per line
//
// Exits 0 when done (or stopped by SIGTERM/SIGINT, printing where to resume),
// 1 with one line on error, 2 on bad usage.
#include <csignal>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "dataset/feeder_run.h"

ABSL_FLAG(std::string, input, "", "train_dataset.path: GSM8K-format jsonl");
ABSL_FLAG(std::string, output, "", "Prompt record file to write (interim: protobuf-delimited)");
ABSL_FLAG(bool, print_gold, false, "print gold answers, one per line, instead of --output");
ABSL_FLAG(uint64_t, seed, 1, "seed of the shuffle");
ABSL_FLAG(bool, shuffle, true, "train_dataset.shuffle");
ABSL_FLAG(bool, drop_last, true, "train_dataset.drop_last");
ABSL_FLAG(uint64_t, batch_size, 1, "train_dataset.batch_size");
ABSL_FLAG(uint32_t, epochs, 1, "total_train_epochs");
ABSL_FLAG(int64_t, max_length, 0, "train_dataset.max_length in tokens of the user content; 0: off");
ABSL_FLAG(bool, skip_malformed, false, "skip and count malformed rows instead of failing");
ABSL_FLAG(std::string, split, "train", "split name used in prompt ids");
ABSL_FLAG(uint32_t, start_epoch, 0, "resume position: epoch");
ABSL_FLAG(uint64_t, start_index, 0, "resume position: index within the epoch");
ABSL_FLAG(int64_t, max_prompts, -1, "stop after this many prompts (-1: all epochs)");

namespace {
volatile std::sig_atomic_t g_stop = 0;  // set by SIGTERM/SIGINT
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  moerl::FeederRunOptions options;
  options.feeder.path = absl::GetFlag(FLAGS_input);
  options.feeder.seed = absl::GetFlag(FLAGS_seed);
  options.feeder.shuffle = absl::GetFlag(FLAGS_shuffle);
  options.feeder.drop_last = absl::GetFlag(FLAGS_drop_last);
  options.feeder.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.feeder.total_train_epochs = absl::GetFlag(FLAGS_epochs);
  options.feeder.max_length = absl::GetFlag(FLAGS_max_length);
  options.feeder.skip_malformed = absl::GetFlag(FLAGS_skip_malformed);
  options.feeder.split = absl::GetFlag(FLAGS_split);
  options.feeder.start = {absl::GetFlag(FLAGS_start_epoch), absl::GetFlag(FLAGS_start_index)};
  options.feeder.max_prompts = absl::GetFlag(FLAGS_max_prompts);
  options.output_path = absl::GetFlag(FLAGS_output);
  // The smoke pipeline's original call: `dataset_feeder --input FILE` prints gold answers.
  options.print_gold = absl::GetFlag(FLAGS_print_gold) || options.output_path.empty();
  if (options.feeder.path.empty()) {
    std::fprintf(stderr, "dataset_feeder: --input <file.jsonl> is required\n");
    return 2;
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  moerl::FeederReport report;
  const absl::Status status = moerl::RunFeeder(options, [] { return g_stop != 0; }, &report);
  if (!status.ok()) {
    std::fprintf(stderr, "dataset_feeder: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
