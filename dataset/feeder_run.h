// The dataset_feeder binary as library calls: load the configuration, load
// the tokenizer, publish prompts.
//
//   MOERL_ASSIGN_OR_RETURN(FeederSettings settings, LoadFeederSettings(args));
//   MOERL_ASSIGN_OR_RETURN(Tokenizer tok, LoadPromptTokenizer(settings.TokenizerPath(), argv[0]));
//   FeederReport report;
//   MOERL_RETURN_IF_ERROR(RunFeeder(settings, tok, should_stop, &report));
//
// Prompts are Gsm8kUserContent(question) rendered with the tokenizer's chat
// template (Qwen3, enable_thinking=false, as AReaL's GSM8K workflow) and
// encoded with it. They go to exactly one destination:
//   dataset.ring         an existing ShmRing (by name; the caller creates it,
//                        e.g. `ring create`), as a producer; closed at the end
//   dataset.output_path  a record file (RecordWriter; appears on success)
//   dataset.print_gold   gold answers on stdout, one per line
// A stop (should_stop) ends the run cleanly, also while waiting for ring
// space (checked every 100 ms): the destination is closed and OK returned,
// report->next being the first prompt not published. Logs progress every
// dataset.progress_every prompts (with the group id of the last one) and a
// summary with the resume position.
//
// Resume (dataset.skip_batches_dir): the group ids in that folder's batch
// files, read as the trainer reads them (000000.rec, 000001.rec, ... up to
// the first missing number; a damaged file is an error naming it), are not
// published; every other position from dataset.start_epoch/start_index on
// is. A folder that does not exist holds no groups.
// Thread: the caller's.
#ifndef MOERL_DATASET_FEEDER_RUN_H_
#define MOERL_DATASET_FEEDER_RUN_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "dataset/feeder.h"
#include "dataset/feeder_settings.h"

namespace moerl {

// The tokenizer file shipped with the binary (its runfiles).
inline constexpr char kSmallTokenizerRunfile[] = "common/tokenizer/data/moerl-gsm8k-bpe.json";

// `--config <yaml> key=value ...` (args without argv[0]) -> validated settings.
absl::StatusOr<FeederSettings> LoadFeederSettings(const std::vector<std::string>& args);

// `path`: a directory (tokenizer.json, else vocab.json + merges.txt) or a
// tokenizer.json file; empty: kSmallTokenizerRunfile, looked up in
// $RUNFILES_DIR, $TEST_SRCDIR, <argv0>.runfiles and the working directory.
absl::StatusOr<Tokenizer> LoadPromptTokenizer(const std::string& path, const std::string& argv0);

// The group ids in <dir>/000000.rec, 000001.rec, ... up to the first missing
// number (none when `dir` does not exist); *files gets how many were read.
absl::StatusOr<absl::flat_hash_set<std::string>> GroupIdsInBatches(const std::string& dir,
                                                                   int64_t* files);

absl::Status RunFeeder(const FeederSettings& settings, const Tokenizer& tokenizer,
                       const std::function<bool()>& should_stop, FeederReport* report);

}  // namespace moerl

#endif  // MOERL_DATASET_FEEDER_RUN_H_
