#include "reward/scorer_run.h"

#include <memory>

#include "common/logging.h"
#include "common/status.h"
#include "reward/file_message_source.h"

namespace moerl {

absl::Status RunScorer(const ScorerRunOptions& options, const std::function<bool()>& should_stop,
                       ScorerReport* report) {
  if (options.input_path.empty() || options.output_dir.empty()) {
    return absl::InvalidArgumentError("--input <trajectories file> and --output_dir are required");
  }
  MOERL_RETURN_IF_ERROR(options.scorer.Validate());
  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<FileMessageSource> source,
                         FileMessageSource::Open(options.input_path));
  DirectoryBatchSink sink(options.output_dir);
  TrajectoryScorer scorer(options.scorer, &sink);
  const absl::Status status = scorer.Run(*source, report, should_stop);
  std::string reasons;
  for (const auto& [reason, count] : report->reasons) {
    absl::StrAppend(&reasons, " ", reason, "=", count);
  }
  MOERL_LOG(INFO) << "scorer: " << report->trajectories_scored << " trajectories scored ("
                  << reasons << " ), " << report->groups_written << " groups in "
                  << report->batches_written << " batches under " << options.output_dir << ", "
                  << report->incomplete_groups_dropped << " incomplete groups dropped, "
                  << report->duplicates_dropped << " duplicates dropped";
  return Annotate(status, options.input_path);
}

}  // namespace moerl
