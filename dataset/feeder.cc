#include "dataset/feeder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/proto/formats.h"
#include "common/status.h"
#include "dataset/gsm8k.h"
#include "rollout/group_id.h"

namespace moerl {

absl::Status FeederConfig::Validate() const {
  if (path.empty()) return absl::InvalidArgumentError("train_dataset.path is empty");
  if (batch_size == 0) {
    return absl::InvalidArgumentError("train_dataset.batch_size must be positive, got 0");
  }
  if (total_train_epochs == 0) {
    return absl::InvalidArgumentError("total_train_epochs must be positive, got 0");
  }
  if (max_length < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("train_dataset.max_length must be >= 0 (0: no limit), got ", max_length));
  }
  if (start.epoch > total_train_epochs) {
    return absl::InvalidArgumentError(absl::StrCat("start epoch ", start.epoch,
                                                   " is past total_train_epochs ",
                                                   total_train_epochs));
  }
  return absl::OkStatus();
}

absl::Status RingPromptSink::Publish(const proto::Prompt& prompt) {
  buffer_.clear();
  if (!prompt.SerializeToString(&buffer_)) {
    return absl::InternalError(absl::StrCat("cannot serialize prompt ", prompt.id()));
  }
  return ring_->Push(buffer_, timeout_);
}

absl::Status RingPromptSink::Close() { return ring_->CloseProducer(); }

Gsm8kFeeder::Gsm8kFeeder(FeederConfig config, std::vector<Entry> entries,
                         FeederReport load_report)
    : config_(std::move(config)),
      entries_(std::move(entries)),
      load_report_(load_report),
      order_(entries_.size(), OrderOptions{config_.seed, config_.shuffle, config_.drop_last,
                                           config_.batch_size}) {}

absl::StatusOr<Gsm8kFeeder> Gsm8kFeeder::Create(const FeederConfig& config,
                                                const TokenizeFn& tokenize,
                                                const RenderPromptFn& render) {
  MOERL_RETURN_IF_ERROR(config.Validate());
  MOERL_CHECK(tokenize != nullptr && render != nullptr);
  Gsm8kLoadOptions load_options;
  load_options.skip_malformed = config.skip_malformed;
  MOERL_ASSIGN_OR_RETURN(Gsm8kFile file, LoadGsm8kFile(config.path, load_options));
  FeederReport report;
  report.rows_read = static_cast<int64_t>(file.rows.size()) + file.skipped_rows;
  report.rows_malformed_skipped = file.skipped_rows;
  if (file.skipped_rows > 0) {
    MOERL_LOG(WARNING) << "skipped " << file.skipped_rows << " malformed rows; first: "
                       << file.first_skipped.message();
  }
  std::vector<Entry> entries;
  entries.reserve(file.rows.size());
  for (Gsm8kRow& row : file.rows) {
    const std::string user = Gsm8kUserContent(row.question);
    if (config.max_length > 0 &&
        static_cast<int64_t>(tokenize(user).size()) > config.max_length) {
      ++report.rows_too_long;
      continue;
    }
    Entry entry;
    entry.source_row = row.line_number - 1;
    entry.text = render(user);
    entry.tokens = tokenize(entry.text);
    entry.gold_answer = std::move(row.gold_answer);
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(config.path, ": no prompts left (", report.rows_read, " rows read, ",
                     report.rows_too_long, " longer than train_dataset.max_length=",
                     config.max_length, ", ", report.rows_malformed_skipped, " malformed)"));
  }
  Gsm8kFeeder feeder(config, std::move(entries), report);
  if (feeder.prompts_per_epoch() == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        config.path, ": ", feeder.entries_.size(), " prompts make no full batch of ",
        "train_dataset.batch_size=", config.batch_size, " with drop_last"));
  }
  if (config.start.index > feeder.prompts_per_epoch()) {
    return absl::InvalidArgumentError(absl::StrCat("start index ", config.start.index,
                                                   " is past the epoch's ",
                                                   feeder.prompts_per_epoch(), " prompts"));
  }
  return feeder;
}

proto::Prompt Gsm8kFeeder::PromptAt(const DataPosition& position) const {
  const Entry& entry = entries_[order_.RowAt(position)];
  proto::Prompt prompt;
  prompt.set_format_version(kPromptFormatVersion);
  prompt.set_id(absl::StrCat(config_.dataset_name, "/", config_.split, "/", entry.source_row));
  prompt.mutable_tokens()->Assign(entry.tokens.begin(), entry.tokens.end());
  prompt.set_text(entry.text);
  prompt.set_gold_answer(entry.gold_answer);
  prompt.set_epoch(position.epoch);
  prompt.set_index(position.index);
  prompt.set_source_row(static_cast<uint64_t>(entry.source_row));
  return prompt;
}

absl::Status Gsm8kFeeder::Run(PromptSink& sink, FeederReport* report,
                              const std::function<bool()>& should_stop) {
  *report = load_report_;
  report->prompts_per_epoch = order_.prompts_per_epoch();
  DataPosition position = config_.start;
  if (position.index == order_.prompts_per_epoch()) position = {position.epoch + 1, 0};
  report->next = position;
  while (position.epoch < config_.total_train_epochs) {
    if (config_.max_prompts >= 0 && report->prompts_published >= config_.max_prompts) break;
    if (should_stop && should_stop()) break;
    proto::Prompt prompt = PromptAt(position);
    if (!config_.skip_group_ids.empty() && config_.skip_group_ids.contains(GroupId(prompt))) {
      ++report->prompts_skipped;
      position = order_.Next(position);
      report->next = position;
      continue;
    }
    MOERL_RETURN_IF_ERROR(Annotate(sink.Publish(prompt),
                                   absl::StrCat("publishing epoch ", position.epoch, " index ",
                                                position.index)));
    ++report->prompts_published;
    position = order_.Next(position);
    report->next = position;
  }
  report->finished = position.epoch >= config_.total_train_epochs;
  return sink.Close();
}

}  // namespace moerl
