#include "dataset/feeder_run.h"

#include <cstdio>
#include <memory>
#include <utility>

#include "common/logging.h"
#include "common/status.h"
#include "dataset/delimited_proto_file.h"

namespace moerl {
namespace {

// Writes prompts to a file, logging progress.
class FileSink : public PromptSink {
 public:
  FileSink(std::unique_ptr<DelimitedProtoWriter> writer, int64_t progress_every)
      : writer_(std::move(writer)), progress_every_(progress_every) {}
  absl::Status Publish(const proto::Prompt& prompt) override {
    MOERL_RETURN_IF_ERROR(writer_->WriteMessage(prompt));
    if (progress_every_ > 0 && ++count_ % progress_every_ == 0) {
      MOERL_LOG(INFO) << "published " << count_ << " prompts (epoch " << prompt.epoch()
                      << ", index " << prompt.index() << ")";
    }
    return absl::OkStatus();
  }
  absl::Status Close() override { return writer_->Close(); }

 private:
  std::unique_ptr<DelimitedProtoWriter> writer_;
  int64_t progress_every_;
  int64_t count_ = 0;
};

class GoldPrintingSink : public PromptSink {
 public:
  absl::Status Publish(const proto::Prompt& prompt) override {
    std::printf("%s\n", prompt.gold_answer().c_str());
    return absl::OkStatus();
  }
  absl::Status Close() override {
    std::fflush(stdout);
    return absl::OkStatus();
  }
};

}  // namespace

absl::Status RunFeeder(const FeederRunOptions& options, const std::function<bool()>& should_stop,
                       FeederReport* report) {
  if (options.output_path.empty() == !options.print_gold) {
    return absl::InvalidArgumentError("give exactly one of --output <file> or --print_gold");
  }
  MOERL_ASSIGN_OR_RETURN(
      Gsm8kFeeder feeder,
      Gsm8kFeeder::Create(options.feeder, ByteTokenize,
                          [](absl::string_view user) { return RenderQwenChatPrompt(user); }));
  std::unique_ptr<PromptSink> sink;
  if (options.print_gold) {
    sink = std::make_unique<GoldPrintingSink>();
  } else {
    MOERL_ASSIGN_OR_RETURN(std::unique_ptr<DelimitedProtoWriter> writer,
                           DelimitedProtoWriter::Create(options.output_path));
    sink = std::make_unique<FileSink>(std::move(writer), options.progress_every);
  }
  const absl::Status status = feeder.Run(*sink, report, should_stop);
  MOERL_LOG(INFO) << "feeder: " << report->prompts_published << " prompts published ("
                  << report->prompts_per_epoch << " per epoch; " << report->rows_too_long
                  << " rows over max_length, " << report->rows_malformed_skipped
                  << " malformed rows skipped); " << (report->finished ? "finished" : "stopped")
                  << "; resume with --start_epoch=" << report->next.epoch
                  << " --start_index=" << report->next.index;
  return status;
}

}  // namespace moerl
