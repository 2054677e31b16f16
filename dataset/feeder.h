// Gsm8kFeeder: GSM8K rows -> Prompt messages, in a seeded, resumable order.
//
//   FeederConfig config;
//   config.path = "train.jsonl";
//   config.total_train_epochs = 10;
//   config.batch_size = 256;
//   config.max_length = 1024;
//   MOERL_ASSIGN_OR_RETURN(Gsm8kFeeder feeder, Gsm8kFeeder::Create(config, tokenize, render));
//   RingPromptSink sink(ring.get(), absl::Seconds(30));
//   FeederReport report;
//   MOERL_RETURN_IF_ERROR(feeder.Run(sink, &report));   // report.next: where to resume
//
// Create loads the file (malformed rows are an error, or skipped and counted
// with skip_malformed), renders and tokenizes every kept row once, and drops
// rows whose user content (question + instruction, no chat template) is
// longer than max_length tokens, as AReaL does. Run publishes from
// config.start until total_train_epochs are done (or max_prompts were
// published, or should_stop says so), then closes the sink. A position whose
// group id is in config.skip_group_ids is passed over (counted, not
// published, not counted against max_prompts).
//
// Each Prompt carries id "<dataset>/<split>/<line-1>" (the 0-based source
// row; the same row in a later epoch has the same id and a higher epoch),
// tokens, text, gold answer, epoch, index and source_row.
//
// Threading: a feeder is used by one thread. It owns its rows; the sink and
// callbacks are borrowed.
#ifndef MOERL_DATASET_FEEDER_H_
#define MOERL_DATASET_FEEDER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/proto/prompt.pb.h"
#include "common/transport/message_ring.h"
#include "dataset/prompt.h"
#include "dataset/prompt_order.h"

namespace moerl {

struct FeederConfig {
  std::string path;                 // train_dataset.path (a jsonl file)
  std::string dataset_name = "gsm8k";
  std::string split = "train";      // train_dataset.split
  uint64_t seed = 1;                // seed
  bool shuffle = true;              // train_dataset.shuffle
  bool drop_last = true;            // train_dataset.drop_last
  uint64_t batch_size = 1;          // train_dataset.batch_size
  uint32_t total_train_epochs = 1;  // total_train_epochs
  int64_t max_length = 0;           // train_dataset.max_length; 0 = no filter
  bool skip_malformed = false;
  DataPosition start;               // resume here
  int64_t max_prompts = -1;         // stop after this many (-1: no limit)
  // Group ids ("<prompt id>@<epoch>", rollout/group_id.h) not to publish:
  // on a resume, the groups already in batch files.
  absl::flat_hash_set<std::string> skip_group_ids;

  // Names the key and value of the first bad setting.
  absl::Status Validate() const;
};

struct FeederReport {
  int64_t rows_read = 0;
  int64_t rows_malformed_skipped = 0;
  int64_t rows_too_long = 0;
  uint64_t prompts_per_epoch = 0;
  int64_t prompts_published = 0;
  int64_t prompts_skipped = 0;  // positions passed over: in skip_group_ids
  DataPosition next;  // the position a restarted feeder should start from
  bool finished = false;  // all epochs published
};

// Where prompts go: a ring, a record file, a test vector.
class PromptSink {
 public:
  virtual ~PromptSink() = default;
  virtual absl::Status Publish(const proto::Prompt& prompt) = 0;
  // No more prompts from this feeder.
  virtual absl::Status Close() = 0;
};

// Publishes serialized prompts into a MessageRing (borrowed), waiting up to
// `timeout` for space; Close closes this producer.
class RingPromptSink : public PromptSink {
 public:
  RingPromptSink(MessageRing* ring, absl::Duration timeout) : ring_(ring), timeout_(timeout) {}
  absl::Status Publish(const proto::Prompt& prompt) override;
  absl::Status Close() override;

 private:
  MessageRing* ring_;
  absl::Duration timeout_;
  std::string buffer_;
};

class Gsm8kFeeder {
 public:
  static absl::StatusOr<Gsm8kFeeder> Create(const FeederConfig& config, const TokenizeFn& tokenize,
                                            const RenderPromptFn& render);

  // Publishes until done; fills *report (also on error: report->next is the
  // first prompt not published).
  absl::Status Run(PromptSink& sink, FeederReport* report,
                   const std::function<bool()>& should_stop = nullptr);

  uint64_t prompts_per_epoch() const { return order_.prompts_per_epoch(); }
  // The prompt at a position, as Run would publish it.
  proto::Prompt PromptAt(const DataPosition& position) const;

 private:
  struct Entry {
    int64_t source_row;
    std::string text;
    std::vector<int32_t> tokens;
    std::string gold_answer;
  };
  Gsm8kFeeder(FeederConfig config, std::vector<Entry> entries, FeederReport load_report);

  FeederConfig config_;
  std::vector<Entry> entries_;
  FeederReport load_report_;
  PromptOrder order_;
};

}  // namespace moerl

#endif  // MOERL_DATASET_FEEDER_H_
