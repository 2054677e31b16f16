// FeederSettings: the configuration keys the dataset_feeder binary reads
// (AReaL names where AReaL has them), bound to one small typed struct.
//
//   FeederSettings settings;
//   MOERL_RETURN_IF_ERROR(settings.Load(tree));   // Declare + Read + Validate
//   FeederConfig feeder = settings.ToFeederConfig();
//
// Keys (docs/config.md, "dataset_feeder"):
//   train_dataset.path          GSM8K-format jsonl (required)
//   train_dataset.batch_size    >= 1, default 1 (drop_last rounds to it)
//   train_dataset.max_length    tokens of the user content, or null (no filter)
//   train_dataset.shuffle       default true
//   train_dataset.drop_last     default true
//   train_dataset.split         default "train" (used in prompt ids)
//   train_dataset.type / pin_memory / num_workers: AReaL's, accepted, unused
//   seed                        default 1
//   total_train_epochs          >= 1, default 1
//   tokenizer_path, actor.path  a Qwen tokenizer directory or tokenizer.json;
//                               tokenizer_path wins; both empty: the small
//                               tokenizer shipped in common/tokenizer/data
//   dataset.ring                ShmRing name to publish into (created by the caller)
//   dataset.output_path         record file to write instead
//   dataset.print_gold          print gold answers to stdout instead
//   dataset.skip_malformed, dataset.start_epoch, dataset.start_index,
//   dataset.max_prompts, dataset.push_timeout_s, dataset.progress_every,
//   dataset.name
//   dataset.skip_batches_dir    a batches/ folder: the group ids in its batch
//                               files 000000.rec, 000001.rec, ... (up to the
//                               first missing number) are not published
//                               again (the pipeline's resume)
// The `train_dataset` and `dataset` sections are owned: an unknown key in
// them is an error naming its full path and the closest valid key.
//
// Plain data; thread-compatible.
#ifndef MOERL_DATASET_FEEDER_SETTINGS_H_
#define MOERL_DATASET_FEEDER_SETTINGS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/config/config_tree.h"
#include "common/config/schema.h"
#include "dataset/feeder.h"

namespace moerl {

struct FeederSettings {
  std::string path;
  int64_t batch_size = 1;
  std::optional<int64_t> max_length;
  bool shuffle = true;
  bool drop_last = true;
  std::string split = "train";
  int64_t seed = 1;
  int64_t total_train_epochs = 1;
  std::string tokenizer_path;
  std::string actor_path;

  std::string ring;
  std::string output_path;
  bool print_gold = false;
  bool skip_malformed = false;
  int64_t start_epoch = 0;
  int64_t start_index = 0;
  int64_t max_prompts = -1;
  double push_timeout_s = 600;
  int64_t progress_every = 1000;
  std::string dataset_name = "gsm8k";
  std::string skip_batches_dir;

  std::string unused_type;
  bool unused_pin_memory = false;
  int64_t unused_num_workers = 0;

  void Declare(ConfigSchema* schema);
  // Exactly one destination; positive timeout; resume position in range.
  absl::Status Validate() const;
  // Declare into a fresh schema, read `tree`, validate.
  absl::Status Load(const ConfigTree& tree);

  FeederConfig ToFeederConfig() const;
  // tokenizer_path, else actor.path, else "" (the default small tokenizer).
  const std::string& TokenizerPath() const;
};

}  // namespace moerl

#endif  // MOERL_DATASET_FEEDER_SETTINGS_H_
