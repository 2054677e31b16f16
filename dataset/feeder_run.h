// RunFeeder: what the dataset_feeder binary does, as a library call.
//
//   FeederRunOptions options;
//   options.feeder.path = "train.jsonl";
//   options.output_path = "prompts.rec";   // or print_gold = true
//   FeederReport report;
//   absl::Status status = RunFeeder(options, should_stop, &report);
//
// Wiring (INTERIM, until //common/transport and //common/tokenizer land):
// prompts are rendered with RenderQwenChatPrompt, tokenized with
// ByteTokenize, and written to a DelimitedProtoWriter file; with print_gold
// each prompt's gold answer is printed to stdout instead, one per line (the
// smoke pipeline reads that). Swapping in ShmRing + RingPromptSink,
// RecordWriter and the real tokenizer changes only this file.
//
// Logs progress every `progress_every` prompts. Thread: the caller's.
#ifndef MOERL_DATASET_FEEDER_RUN_H_
#define MOERL_DATASET_FEEDER_RUN_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "dataset/feeder.h"

namespace moerl {

struct FeederRunOptions {
  FeederConfig feeder;
  std::string output_path;  // Prompt records; empty with print_gold
  bool print_gold = false;
  int64_t progress_every = 1000;
};

absl::Status RunFeeder(const FeederRunOptions& options, const std::function<bool()>& should_stop,
                       FeederReport* report);

}  // namespace moerl

#endif  // MOERL_DATASET_FEEDER_RUN_H_
