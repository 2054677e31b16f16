#include "dataset/feeder_settings.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/hf_cache.h"
#include "common/status.h"

namespace moerl {

void FeederSettings::Declare(ConfigSchema* schema) {
  // The feeder owns train_dataset: a misspelt key there would silently
  // change the data. AReaL's keys it does not use are accepted.
  schema->OwnSection("train_dataset");
  schema->String("train_dataset.type", &unused_type, "AReaL's dataset type (accepted, unused)");
  schema->Bool("train_dataset.pin_memory", &unused_pin_memory, "accepted, unused");
  schema->Int("train_dataset.num_workers", &unused_num_workers, "accepted, unused", 0);
  schema->String("train_dataset.path", &path, "GSM8K-format jsonl file");
  schema->Int("train_dataset.batch_size", &batch_size, "prompts per step", 1);
  schema->OptionalInt("train_dataset.max_length", &max_length,
                      "drop prompts whose user content is longer (tokens); null: keep all", 1);
  schema->Bool("train_dataset.shuffle", &shuffle, "seeded shuffle each epoch");
  schema->Bool("train_dataset.drop_last", &drop_last, "drop the last incomplete batch");
  schema->String("train_dataset.split", &split, "split name used in prompt ids");
  schema->Int("seed", &seed, "seed of the shuffle", 0);
  schema->Int("total_train_epochs", &total_train_epochs, "epochs to publish", 1,
              std::numeric_limits<uint32_t>::max());
  schema->String("tokenizer_path", &tokenizer_path, "tokenizer directory or tokenizer.json");
  schema->String("actor.path", &actor_path, "model directory (its tokenizer is used)");
  schema->OwnSection("dataset");
  schema->String("dataset.ring", &ring, "ShmRing name to publish Prompt messages into");
  schema->String("dataset.output_path", &output_path, "record file of Prompt messages");
  schema->Bool("dataset.print_gold", &print_gold, "print gold answers, one per line");
  schema->Bool("dataset.skip_malformed", &skip_malformed, "skip and count malformed rows");
  schema->Int("dataset.start_epoch", &start_epoch, "resume position: epoch", 0,
              std::numeric_limits<uint32_t>::max());
  schema->Int("dataset.start_index", &start_index, "resume position: index in the epoch", 0);
  schema->Int("dataset.max_prompts", &max_prompts, "stop after this many (-1: all)", -1);
  schema->Double("dataset.push_timeout_s", &push_timeout_s, "longest wait for ring space");
  schema->Int("dataset.progress_every", &progress_every, "log every N prompts (0: never)", 0);
  schema->String("dataset.name", &dataset_name, "dataset name used in prompt ids");
  schema->String("dataset.skip_batches_dir", &skip_batches_dir,
                 "batch folder whose groups are not published again (resume)");
}

absl::Status FeederSettings::Validate() const {
  if (path.empty()) return absl::InvalidArgumentError("train_dataset.path is required");
  const int destinations = !ring.empty() + !output_path.empty() + print_gold;
  if (destinations != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "give exactly one of dataset.ring, dataset.output_path or dataset.print_gold=true; got "
        "dataset.ring='",
        ring, "', dataset.output_path='", output_path,
        "', dataset.print_gold=", print_gold ? "true" : "false"));
  }
  if (!(push_timeout_s > 0) || !std::isfinite(push_timeout_s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset.push_timeout_s must be > 0, got ", push_timeout_s));
  }
  return ToFeederConfig().Validate();
}

absl::Status FeederSettings::Load(const ConfigTree& tree) {
  ConfigSchema schema;
  Declare(&schema);
  MOERL_RETURN_IF_ERROR(schema.Read(tree));
  // Hugging Face model ids name their snapshot in the local cache.
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("tokenizer_path", &tokenizer_path));
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("actor.path", &actor_path));
  return Validate();
}

FeederConfig FeederSettings::ToFeederConfig() const {
  FeederConfig config;
  config.path = path;
  config.dataset_name = dataset_name;
  config.split = split;
  config.seed = static_cast<uint64_t>(seed);
  config.shuffle = shuffle;
  config.drop_last = drop_last;
  config.batch_size = static_cast<uint64_t>(batch_size);
  config.total_train_epochs = static_cast<uint32_t>(total_train_epochs);
  config.max_length = max_length.value_or(0);
  config.skip_malformed = skip_malformed;
  config.start = {static_cast<uint32_t>(start_epoch), static_cast<uint64_t>(start_index)};
  config.max_prompts = max_prompts;
  return config;
}

const std::string& FeederSettings::TokenizerPath() const {
  return tokenizer_path.empty() ? actor_path : tokenizer_path;
}

}  // namespace moerl
