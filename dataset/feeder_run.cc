#include "dataset/feeder_run.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/batch_source.h"
#include "common/config/cli.h"
#include "common/logging.h"
#include "common/stage_timing.h"
#include "common/status.h"
#include "common/transport/record_io.h"
#include "common/transport/shm_ring.h"
#include "common/transport/timed_ring.h"
#include "rollout/group_id.h"

namespace moerl {
namespace {

bool IsDirectory(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool Exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

std::string FindRunfile(const std::string& relative, const std::string& argv0) {
  std::vector<std::string> roots;
  for (const char* env : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    if (const char* dir = std::getenv(env); dir != nullptr) roots.push_back(dir);
  }
  if (!argv0.empty()) roots.push_back(argv0 + ".runfiles");
  for (const std::string& root : roots) {
    const std::string candidate = absl::StrCat(root, "/moerl/", relative);
    if (Exists(candidate)) return candidate;
  }
  return relative;  // the working directory (bazel test / bazel run)
}

// Adds progress logging to another sink.
class ProgressSink : public PromptSink {
 public:
  ProgressSink(PromptSink* inner, int64_t every) : inner_(inner), every_(every) {}
  absl::Status Publish(const proto::Prompt& prompt) override {
    MOERL_RETURN_IF_ERROR(inner_->Publish(prompt));
    if (every_ > 0 && ++count_ % every_ == 0) {
      MOERL_LOG(INFO) << "published " << count_ << " prompts (epoch " << prompt.epoch()
                      << ", index " << prompt.index() << ", group " << GroupId(prompt) << ")";
    }
    return absl::OkStatus();
  }
  absl::Status Close() override { return inner_->Close(); }

 private:
  PromptSink* inner_;
  int64_t every_;
  int64_t count_ = 0;
};

// Publishes into a ring, waiting for space in short slices so that a stop
// request is noticed while the ring is full (the usual state: the feeder
// runs ahead of training). A stop while waiting is kCancelled. Serializing
// is transport time of `timing` (the ring's own calls are timed by TimedRing).
class StoppableRingSink : public PromptSink {
 public:
  StoppableRingSink(MessageRing* ring, absl::Duration timeout,
                    const std::function<bool()>& should_stop, StageTiming* timing)
      : ring_(ring), timeout_(timeout), should_stop_(should_stop), timing_(timing) {}
  absl::Status Publish(const proto::Prompt& prompt) override {
    {
      ScopedStageTimer t(timing_, TimeBucket::kTransport);
      buffer_.clear();
      if (!prompt.SerializeToString(&buffer_)) {
        return absl::InternalError(absl::StrCat("cannot serialize prompt ", prompt.id()));
      }
    }
    const absl::Time deadline = absl::Now() + timeout_;
    while (true) {
      const absl::Duration left = deadline - absl::Now();
      const absl::Status status = ring_->Push(buffer_, std::min(left, kSlice));
      if (!absl::IsDeadlineExceeded(status)) return status;
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "no ring space for dataset.push_timeout_s=", absl::ToDoubleSeconds(timeout_), " s"));
      }
      if (should_stop_ && should_stop_()) {
        return absl::CancelledError("stopped while waiting for ring space");
      }
    }
  }
  absl::Status Close() override { return ring_->CloseProducer(); }

 private:
  static constexpr absl::Duration kSlice = absl::Milliseconds(100);
  MessageRing* ring_;
  absl::Duration timeout_;
  const std::function<bool()>& should_stop_;
  StageTiming* timing_;
  std::string buffer_;
};

class RecordFileSink : public PromptSink {
 public:
  explicit RecordFileSink(std::unique_ptr<RecordWriter> writer) : writer_(std::move(writer)) {}
  absl::Status Publish(const proto::Prompt& prompt) override {
    return writer_->WriteMessage(prompt);
  }
  absl::Status Close() override { return writer_->Close(); }

 private:
  std::unique_ptr<RecordWriter> writer_;
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

absl::StatusOr<FeederSettings> LoadFeederSettings(const std::vector<std::string>& args) {
  MOERL_ASSIGN_OR_RETURN(CommandLine cli, ParseCommandLine(args, {}));
  MOERL_ASSIGN_OR_RETURN(ConfigTree tree, LoadConfig(cli));
  FeederSettings settings;
  MOERL_RETURN_IF_ERROR(settings.Load(tree));
  return settings;
}

absl::StatusOr<Tokenizer> LoadPromptTokenizer(const std::string& path, const std::string& argv0) {
  std::string file = path;
  if (path.empty()) {
    file = FindRunfile(kSmallTokenizerRunfile, argv0);
  } else if (IsDirectory(path)) {
    file = path + "/tokenizer.json";
    if (!Exists(file)) {
      absl::StatusOr<Tokenizer> tokenizer = Tokenizer::FromVocabMerges(path);
      if (!tokenizer.ok()) return Annotate(tokenizer.status(), "loading tokenizer " + path);
      return tokenizer;
    }
  }
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::FromTokenizerJson(file);
  if (!tokenizer.ok()) return Annotate(tokenizer.status(), "loading tokenizer " + file);
  return tokenizer;
}

absl::StatusOr<absl::flat_hash_set<std::string>> GroupIdsInBatches(const std::string& dir,
                                                                   int64_t* files) {
  absl::flat_hash_set<std::string> ids;
  *files = 0;
  if (!IsDirectory(dir)) return ids;
  BatchSourceOptions options;
  options.dir = dir;
  const BatchSource naming(options);
  proto::TrajectoryBatch batch;
  for (int64_t index = 0;; ++index) {
    const std::string path = naming.PathOf(index);
    if (!Exists(path)) break;
    absl::Status read = BatchSource::ReadBatchFile(path, /*vocab_size=*/0, &batch);
    if (!read.ok()) return Annotate(read, "dataset.skip_batches_dir");
    for (const proto::Trajectory& trajectory : batch.trajectories()) ids.insert(trajectory.group_id());
    ++*files;
  }
  return ids;
}

absl::Status RunFeeder(const FeederSettings& settings, const Tokenizer& tokenizer,
                       const std::function<bool()>& should_stop, FeederReport* report) {
  MOERL_RETURN_IF_ERROR(settings.Validate());
  // Into a ring (a pipeline stage): where the time goes, in the log
  // (docs/pipeline.md, "Stage timing"); loading and tokenizing count as compute.
  StageTiming timing("feeder");
  std::optional<StageTimingReporter> reporter;
  if (!settings.ring.empty()) reporter.emplace(&timing, kStageTimingPeriod);
  FeederConfig config = settings.ToFeederConfig();
  if (!settings.skip_batches_dir.empty()) {
    int64_t files = 0;
    MOERL_ASSIGN_OR_RETURN(config.skip_group_ids, GroupIdsInBatches(settings.skip_batches_dir, &files));
    MOERL_LOG(INFO) << "resume: " << config.skip_group_ids.size() << " groups in " << files
                    << " batch files of " << settings.skip_batches_dir << " are not published again";
  }
  ChatOptions chat;
  chat.enable_thinking = false;
  MOERL_ASSIGN_OR_RETURN(
      Gsm8kFeeder feeder,
      Gsm8kFeeder::Create(
          config,
          [tokenizer](absl::string_view text) { return tokenizer.Encode(text); },
          [tokenizer, chat](absl::string_view user) {
            return tokenizer.RenderChatPrompt(user, chat);
          }));
  std::unique_ptr<ShmRing> ring;
  std::unique_ptr<TimedRing> timed_ring;
  std::unique_ptr<PromptSink> sink;
  if (!settings.ring.empty()) {
    absl::StatusOr<std::unique_ptr<ShmRing>> opened =
        ShmRing::Open(settings.ring, RingRole::kProducer);
    if (!opened.ok()) return Annotate(opened.status(), "dataset.ring=" + settings.ring);
    ring = std::move(opened).value();
    timed_ring = std::make_unique<TimedRing>(ring.get(), &timing);
    sink = std::make_unique<StoppableRingSink>(
        timed_ring.get(), absl::Seconds(settings.push_timeout_s), should_stop, &timing);
  } else if (!settings.output_path.empty()) {
    MOERL_ASSIGN_OR_RETURN(std::unique_ptr<RecordWriter> writer,
                           RecordWriter::Create(settings.output_path));
    sink = std::make_unique<RecordFileSink>(std::move(writer));
  } else {
    sink = std::make_unique<GoldPrintingSink>();
  }
  ProgressSink progress(sink.get(), settings.progress_every);
  // On error the ring producer is not closed: consumers see it as died
  // (RingStats::producers_died), not as a clean end.
  absl::Status status = feeder.Run(progress, report, should_stop);
  timing.Count("prompts", report->prompts_published);
  if (absl::IsCancelled(status) && should_stop && should_stop()) {
    status = sink->Close();  // a requested stop, not a failure
  }
  MOERL_LOG(INFO) << "feeder: " << report->prompts_published << " prompts published, "
                  << report->prompts_skipped << " skipped as already in batches ("
                  << report->prompts_per_epoch << " per epoch; " << report->rows_too_long
                  << " rows over max_length, " << report->rows_malformed_skipped
                  << " malformed rows skipped); " << (report->finished ? "finished" : "stopped")
                  << "; resume with dataset.start_epoch=" << report->next.epoch
                  << " dataset.start_index=" << report->next.index;
  return status;
}

}  // namespace moerl
