#include "reward/scorer_run.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/config/cli.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/stage_timing.h"
#include "common/transport/shm_ring.h"
#include "common/transport/timed_ring.h"
#include "reward/file_message_source.h"
#include "reward/scorer_settings.h"

namespace moerl {
namespace {

// mkdir -p.
absl::Status MakeDirectories(const std::string& dir) {
  for (size_t slash = 1; slash <= dir.size(); ++slash) {
    if (slash != dir.size() && dir[slash] != '/') continue;
    const std::string prefix = dir.substr(0, slash);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create directory ", prefix, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MessageRing>> OpenInput(const ScorerRunOptions& options) {
  if (!options.input_path.empty()) {
    MOERL_ASSIGN_OR_RETURN(std::unique_ptr<FileMessageSource> source,
                           FileMessageSource::Open(options.input_path));
    return std::unique_ptr<MessageRing>(std::move(source));
  }
  absl::StatusOr<std::unique_ptr<ShmRing>> ring = ShmRing::Open(options.ring, RingRole::kConsumer);
  if (!ring.ok()) return Annotate(ring.status(), "reward.ring=" + options.ring);
  if ((*ring)->delivery_mode() != DeliveryMode::kAcknowledged) {
    return absl::FailedPreconditionError(absl::StrCat(
        "reward.ring=", options.ring,
        " is in plain mode; the scorer needs acknowledged mode so that nothing is lost if it "
        "dies (create it with `ring create ",
        options.ring, " --mode=ack`)"));
  }
  return std::unique_ptr<MessageRing>(std::move(ring).value());
}

}  // namespace

absl::StatusOr<ScorerRunOptions> LoadScorerRunOptions(const std::vector<std::string>& args) {
  MOERL_ASSIGN_OR_RETURN(CommandLine cli, ParseCommandLine(args, {}));
  MOERL_ASSIGN_OR_RETURN(ConfigTree tree, LoadConfig(cli));
  ScorerSettings settings;
  MOERL_RETURN_IF_ERROR(settings.Load(tree));
  return settings.ToRunOptions();
}

absl::Status RunScorer(const ScorerRunOptions& options, const std::function<bool()>& should_stop,
                       ScorerReport* report) {
  if (options.ring.empty() == options.input_path.empty() || options.output_dir.empty()) {
    return absl::InvalidArgumentError(
        "give exactly one of reward.ring or reward.input_path, and an output directory");
  }
  MOERL_RETURN_IF_ERROR(options.scorer.Validate());
  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<MessageRing> source, OpenInput(options));
  MOERL_RETURN_IF_ERROR(MakeDirectories(options.output_dir));
  DirectoryBatchSink sink(options.output_dir);
  // Where the time goes, in the log (docs/pipeline.md, "Stage timing").
  StageTiming timing("scorer");
  StageTimingReporter reporter(&timing, kStageTimingPeriod);
  TimedRing timed_source(source.get(), &timing);
  TrajectoryScorer scorer(options.scorer, &sink, &timing);
  const absl::Status status = scorer.Run(timed_source, report, should_stop);
  timing.Count("trajectories", report->trajectories_scored);
  std::string reasons;
  for (const auto& [reason, count] : report->reasons) {
    absl::StrAppend(&reasons, " ", reason, "=", count);
  }
  MOERL_LOG(INFO) << "scorer: " << report->trajectories_scored << " trajectories scored ("
                  << reasons << " ), " << report->groups_written << " groups in "
                  << report->batches_written << " batches under " << options.output_dir << ", "
                  << report->incomplete_groups_dropped << " incomplete groups dropped, "
                  << report->duplicates_dropped << " duplicates dropped, "
                  << report->malformed_dropped << " malformed messages dropped";
  return Annotate(status, options.input_path.empty() ? options.ring : options.input_path);
}

}  // namespace moerl
