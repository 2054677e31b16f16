#include "common/batch_source.h"

#include <sys/stat.h>

#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/proto/formats.h"
#include "common/status.h"
#include "common/transport/record_io.h"

namespace moerl {
namespace {

absl::Status Bad(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::Status ValidateTrajectory(const proto::Trajectory& t, int64_t vocab_size,
                                const std::string& where) {
  if (t.format_version() < 1 || t.format_version() > kTrajectoryFormatVersion) {
    return Bad(where, absl::StrCat("format_version is ", t.format_version(), ", expected 1..",
                                   kTrajectoryFormatVersion));
  }
  if (!t.scored()) return Bad(where, "scored is false: the reward scorer has not scored it");
  if (!std::isfinite(t.reward())) return Bad(where, absl::StrCat("reward is ", t.reward()));
  if (t.prompt_tokens_size() == 0) return Bad(where, "prompt_tokens is empty");
  const int n = t.output_tokens_size();
  if (n == 0) return Bad(where, "output_tokens is empty");
  if (t.output_logprobs_size() != n) {
    return Bad(where, absl::StrCat("output_logprobs has ", t.output_logprobs_size(),
                                   " entries, output_tokens ", n));
  }
  if (t.output_versions_size() != n) {
    return Bad(where, absl::StrCat("output_versions has ", t.output_versions_size(),
                                   " entries, output_tokens ", n));
  }
  auto check_ids = [&](const google::protobuf::RepeatedField<int32_t>& ids,
                       const char* field) -> absl::Status {
    for (int i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || (vocab_size > 0 && ids[i] >= vocab_size)) {
        return Bad(where, absl::StrCat(field, "[", i, "] = ", ids[i], " is outside the vocabulary [0, ",
                                       vocab_size, ")"));
      }
    }
    return absl::OkStatus();
  };
  MOERL_RETURN_IF_ERROR(check_ids(t.prompt_tokens(), "prompt_tokens"));
  MOERL_RETURN_IF_ERROR(check_ids(t.output_tokens(), "output_tokens"));
  for (int i = 0; i < n; ++i) {
    const float lp = t.output_logprobs(i);
    if (!std::isfinite(lp) || lp > 1e-3f) {
      return Bad(where, absl::StrCat("output_logprobs[", i, "] = ", lp,
                                     " is not a finite log-probability (<= 0)"));
    }
    if (t.output_versions(i) < 0) {
      return Bad(where, absl::StrCat("output_versions[", i, "] = ", t.output_versions(i), " < 0"));
    }
  }
  if (t.routed_experts_size() > 0) {
    const int64_t expected = int64_t{n} * t.routed_experts_layers() * t.routed_experts_top_k();
    if (t.routed_experts_size() != expected) {
      return Bad(where, absl::StrCat("routed_experts has ", t.routed_experts_size(),
                                     " ids, expected output_tokens x routed_experts_layers x "
                                     "routed_experts_top_k = ",
                                     n, " x ", t.routed_experts_layers(), " x ",
                                     t.routed_experts_top_k(), " = ", expected));
    }
    for (int i = 0; i < t.routed_experts_size(); ++i) {
      if (t.routed_experts(i) < 0) {
        return Bad(where, absl::StrCat("routed_experts[", i, "] = ", t.routed_experts(i), " < 0"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTrajectoryBatch(const proto::TrajectoryBatch& batch, int64_t vocab_size,
                                     const std::string& where) {
  if (batch.format_version() < 1 || batch.format_version() > kTrajectoryBatchFormatVersion) {
    return Bad(where, absl::StrCat("format_version is ", batch.format_version(), ", expected 1..",
                                   kTrajectoryBatchFormatVersion));
  }
  const int n = batch.trajectories_size();
  if (n == 0) return Bad(where, "trajectories is empty: a batch holds at least one group");
  const int g = static_cast<int>(batch.group_size());
  if (g < 1) return Bad(where, "group_size is 0: a batch holds whole groups of group_size >= 1");
  if (n % g != 0) {
    return Bad(where, absl::StrCat("trajectories has ", n, " entries, not a multiple of group_size ", g));
  }
  for (int i = 0; i < n; ++i) {
    const proto::Trajectory& t = batch.trajectories(i);
    const std::string twhere = absl::StrCat(where, ": trajectories[", i, "] (group '", t.group_id(),
                                            "' sample ", t.sample_index(), ")");
    const proto::Trajectory& first = batch.trajectories(i - i % g);
    if (t.group_id().empty()) return Bad(twhere, "group_id is empty");
    if (t.group_id() != first.group_id()) {
      return Bad(twhere, absl::StrCat("group_id differs from its group's first member '",
                                      first.group_id(), "': groups must be whole and contiguous"));
    }
    if (static_cast<int>(t.sample_index()) != i % g) {
      return Bad(twhere, absl::StrCat("sample_index is ", t.sample_index(), ", expected ", i % g,
                                      " (members ordered by sample_index)"));
    }
    MOERL_RETURN_IF_ERROR(ValidateTrajectory(t, vocab_size, twhere));
  }
  return absl::OkStatus();
}

BatchSource::BatchSource(BatchSourceOptions options)
    : options_(std::move(options)), next_index_(options_.start_index) {}

std::string BatchSource::PathOf(int64_t index) const {
  return absl::StrFormat("%s/%06d.rec", options_.dir, index);
}

absl::Status BatchSource::ReadBatchFile(const std::string& path, int64_t vocab_size,
                                        proto::TrajectoryBatch* batch) {
  auto as_invalid = [](const absl::Status& s) {
    return s.ok() ? s : absl::InvalidArgumentError(s.message());
  };
  absl::StatusOr<std::unique_ptr<RecordReader>> reader = RecordReader::Open(path);
  if (!reader.ok()) return as_invalid(reader.status());
  absl::StatusOr<bool> got = (*reader)->NextMessage(batch);
  if (!got.ok()) return as_invalid(got.status());
  if (!*got) return Bad(path, "holds no record; expected one TrajectoryBatch");
  const std::string where =
      absl::StrCat(path, " (record 0 at byte ", (*reader)->record_offset(), ")");
  std::string extra;
  absl::StatusOr<bool> more = (*reader)->Next(&extra);
  if (!more.ok()) return as_invalid(more.status());
  if (*more) {
    return Bad(path, absl::StrCat("holds a second record at byte ", (*reader)->record_offset(),
                                  "; expected exactly one TrajectoryBatch"));
  }
  return ValidateTrajectoryBatch(*batch, vocab_size, where);
}

absl::StatusOr<bool> BatchSource::Next(const std::function<bool()>& should_stop,
                                       proto::TrajectoryBatch* batch) {
  const std::string path = PathOf(next_index_);
  while (true) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) break;
    if (!options_.follow) return false;
    if (should_stop && should_stop()) return false;
    absl::SleepFor(options_.poll_interval);
  }
  batch->Clear();
  absl::Status status = ReadBatchFile(path, options_.vocab_size, batch);
  if (!status.ok()) {
    batch->Clear();
    return status;
  }
  ++next_index_;
  return true;
}

}  // namespace moerl
