#include "reward/scorer.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/proto/formats.h"
#include "common/status.h"
#include "common/transport/record_io.h"
#include "reward/answer.h"

namespace moerl {

absl::Status ScorerConfig::Validate() const {
  if (n_samples == 0) return absl::InvalidArgumentError("gconfig.n_samples must be positive, got 0");
  if (batch_size == 0) {
    return absl::InvalidArgumentError("train_dataset.batch_size must be positive, got 0");
  }
  return absl::OkStatus();
}

namespace {

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

// The writer's pid and host of a `.batch-<pid>-<n>[@<host>@]...` name.
bool ParseTemporaryName(absl::string_view name, pid_t* pid, std::string* host) {
  if (!absl::ConsumePrefix(&name, ".batch-")) return false;
  size_t digits = 0;
  while (digits < name.size() && digits < 10 && absl::ascii_isdigit(name[digits])) ++digits;
  if (digits == 0 || digits == name.size() || name[digits] != '-') return false;
  const int64_t value = std::strtoll(std::string(name.substr(0, digits)).c_str(), nullptr, 10);
  if (value <= 0 || value > std::numeric_limits<pid_t>::max()) return false;
  *pid = static_cast<pid_t>(value);
  const size_t at = name.find('@');
  host->clear();
  if (at != absl::string_view::npos) {
    const size_t end = name.find('@', at + 1);
    if (end == absl::string_view::npos) return false;
    *host = std::string(name.substr(at + 1, end - at - 1));
  }
  return true;
}

// "000123.rec" -> 123.
std::optional<uint64_t> BatchNumber(absl::string_view name) {
  if (!absl::ConsumeSuffix(&name, ".rec") || name.size() < 6 || name.size() > 18) {
    return std::nullopt;
  }
  if (!std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return std::nullopt;
  }
  return std::strtoull(std::string(name).c_str(), nullptr, 10);
}

}  // namespace

absl::Status DirectoryBatchSink::ListDirectory() {
  DIR* dir = ::opendir(dir_.c_str());
  if (dir == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot list ", dir_, ": ", std::strerror(errno)));
  }
  ++stats_.directory_listings;
  const bool clean = !listed_;
  const std::string this_host = clean ? HostName() : "";
  std::vector<std::string> stale;
  while (const dirent* entry = ::readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (std::optional<uint64_t> number = BatchNumber(name)) {
      next_index_ = std::max(next_index_, *number + 1);
      continue;
    }
    pid_t pid = 0;
    std::string host;
    if (clean && ParseTemporaryName(name, &pid, &host) && (host.empty() || host == this_host) &&
        ::kill(pid, 0) != 0 && errno == ESRCH) {
      stale.emplace_back(name);
    }
  }
  ::closedir(dir);
  for (const std::string& name : stale) {
    if (::unlink(absl::StrCat(dir_, "/", name).c_str()) == 0) ++stats_.stale_temporaries_removed;
  }
  if (!stale.empty()) {
    MOERL_LOG(INFO) << "batch directory " << dir_ << ": removed "
                    << stats_.stale_temporaries_removed << " temporaries of dead writers";
  }
  listed_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> DirectoryBatchSink::WriteBatch(proto::TrajectoryBatch& batch) {
  if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir_, ": ", std::strerror(errno)));
  }
  if (!listed_) MOERL_RETURN_IF_ERROR(ListDirectory());
  const std::string tmp = absl::StrCat(dir_, "/.batch-", ::getpid(), "-",
                                       reinterpret_cast<uintptr_t>(this), "@", HostName(), "@");
  while (true) {
    batch.set_batch_index(next_index_);
    MOERL_ASSIGN_OR_RETURN(std::unique_ptr<RecordWriter> writer, RecordWriter::Create(tmp));
    MOERL_RETURN_IF_ERROR(writer->WriteMessage(batch));
    MOERL_RETURN_IF_ERROR(writer->Close());
    const std::string path = absl::StrFormat("%s/%06d.rec", dir_, next_index_);
    // link(2) never replaces an existing file: the number is ours or taken.
    ++stats_.link_attempts;
    if (::link(tmp.c_str(), path.c_str()) == 0) {
      ::unlink(tmp.c_str());
      ++next_index_;
      return path;
    }
    if (errno != EEXIST) {
      return absl::DataLossError(absl::StrCat("cannot link ", tmp, " to ", path, ": ",
                                              std::strerror(errno)));
    }
    // Another scorer took it: jump past whatever the directory holds now.
    ::unlink(tmp.c_str());
    const uint64_t taken = next_index_;
    MOERL_RETURN_IF_ERROR(ListDirectory());
    next_index_ = std::max(next_index_, taken + 1);
  }
}

absl::Status TrajectoryScorer::AddTrajectory(MessageRing& ring, proto::Trajectory trajectory,
                                             uint64_t ticket, ScorerReport* report) {
  const std::string where = absl::StrCat("trajectory of group '", trajectory.group_id(),
                                         "' sample ", trajectory.sample_index());
  if (trajectory.format_version() > kTrajectoryFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat(where, " has format_version ",
                                                   trajectory.format_version(), ", newer than ",
                                                   kTrajectoryFormatVersion));
  }
  if (trajectory.group_id().empty()) return absl::InvalidArgumentError(where + " has no group_id");
  if (trajectory.sample_index() >= config_.n_samples) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": sample_index must be < gconfig.n_samples=",
                                                   config_.n_samples));
  }
  PendingGroup& group = pending_[trajectory.group_id()];
  if (group.samples.count(trajectory.sample_index()) > 0) {
    ++report->duplicates_dropped;  // a redelivery of one we still hold
    return ticket != 0 ? ring.Ack(ticket) : absl::OkStatus();
  }
  const absl::Time scoring = timing_ != nullptr ? timing_->Now() : absl::InfinitePast();
  const Score score = ScoreCompletion(trajectory.output_text(), trajectory.gold_answer(),
                                      config_.unit_rule);
  if (timing_ != nullptr) timing_->Add(TimeBucket::kCompute, timing_->Now() - scoring);
  trajectory.set_reward(score.reward);
  trajectory.set_scored(true);
  trajectory.set_reward_reason(ScoreReasonName(score.reason));
  ++report->trajectories_scored;
  ++report->reasons[trajectory.reward_reason()];
  const std::string group_id = trajectory.group_id();
  const uint32_t index = trajectory.sample_index();
  group.samples.emplace(index, std::move(trajectory));
  group.tickets.push_back(ticket);
  if (group.samples.size() == config_.n_samples) {
    ready_.push_back(std::move(group));
    pending_.erase(group_id);
  }
  return absl::OkStatus();
}

absl::Status TrajectoryScorer::HandleMessage(MessageRing& ring, const RingMessage& message,
                                             ScorerReport* report) {
  if (config_.message_kind == MessageKind::kTrajectory) {
    proto::Trajectory trajectory;
    bool parsed;
    {
      ScopedStageTimer t(timing_, TimeBucket::kTransport);
      parsed = trajectory.ParseFromString(message.payload);
    }
    if (!parsed) {
      return absl::InvalidArgumentError(absl::StrCat("ring message (ticket ", message.ticket,
                                                     ", ", message.payload.size(),
                                                     " bytes) is not a Trajectory"));
    }
    return AddTrajectory(ring, std::move(trajectory), message.ticket, report);
  }
  proto::TrajectoryBatch group;
  bool parsed;
  {
    ScopedStageTimer t(timing_, TimeBucket::kTransport);
    parsed = group.ParseFromString(message.payload);
  }
  if (!parsed || group.trajectories_size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat("ring message (ticket ", message.ticket,
                                                   ") is not a one-group TrajectoryBatch"));
  }
  const std::string group_id = group.trajectories(0).group_id();
  if (group.trajectories_size() != static_cast<int>(config_.n_samples)) {
    return absl::InvalidArgumentError(absl::StrCat("group '", group_id, "' has ",
                                                   group.trajectories_size(),
                                                   " trajectories, gconfig.n_samples=",
                                                   config_.n_samples));
  }
  std::vector<bool> seen(config_.n_samples, false);
  for (const proto::Trajectory& t : group.trajectories()) {
    if (t.group_id() != group_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("group message '", group_id, "' mixes in group '", t.group_id(), "'"));
    }
    if (t.sample_index() >= config_.n_samples || seen[t.sample_index()]) {
      return absl::InvalidArgumentError(absl::StrCat("group '", group_id, "' has sample_index ",
                                                     t.sample_index(), " twice or out of range"));
    }
    seen[t.sample_index()] = true;
  }
  for (int i = 0; i < group.trajectories_size(); ++i) {
    // The whole message is one ticket: only the last member carries it, so
    // it is acknowledged once, with the group.
    const bool last = i + 1 == group.trajectories_size();
    MOERL_RETURN_IF_ERROR(AddTrajectory(ring, std::move(*group.mutable_trajectories(i)),
                                        last ? message.ticket : 0, report));
  }
  return absl::OkStatus();
}

absl::Status TrajectoryScorer::WriteReadyBatches(MessageRing& ring, bool flush,
                                                 ScorerReport* report) {
  while (ready_.size() >= config_.batch_size || (flush && !ready_.empty())) {
    const size_t n = std::min<size_t>(config_.batch_size, ready_.size());
    if (config_.sort_groups) {
      std::sort(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(n),
                [](const PendingGroup& a, const PendingGroup& b) {
                  return a.samples.begin()->second.group_id() < b.samples.begin()->second.group_id();
                });
    }
    proto::TrajectoryBatch batch;
    batch.set_format_version(kTrajectoryBatchFormatVersion);
    batch.set_group_size(config_.n_samples);
    for (size_t g = 0; g < n; ++g) {
      for (auto& [index, trajectory] : ready_[g].samples) {
        *batch.add_trajectories() = std::move(trajectory);
      }
    }
    absl::StatusOr<std::string> written;
    {
      ScopedStageTimer t(timing_, TimeBucket::kTransport);
      written = sink_->WriteBatch(batch);
    }
    MOERL_ASSIGN_OR_RETURN(std::string location, std::move(written));
    if (timing_ != nullptr) timing_->Count("batches", 1);
    for (size_t g = 0; g < n; ++g) {
      for (uint64_t ticket : ready_[g].tickets) {
        if (ticket != 0) MOERL_RETURN_IF_ERROR(ring.Ack(ticket));
      }
    }
    ready_.erase(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(n));
    report->groups_written += static_cast<int64_t>(n);
    ++report->batches_written;
    report->batch_locations.push_back(std::move(location));
  }
  return absl::OkStatus();
}

absl::Status TrajectoryScorer::Run(MessageRing& ring, ScorerReport* report,
                                   const std::function<bool()>& should_stop) {
  MOERL_RETURN_IF_ERROR(config_.Validate());
  bool flushed = false;
  while (true) {
    absl::StatusOr<RingMessage> message = ring.Pop(config_.poll_interval);
    if (message.ok()) {
      absl::Status handled = HandleMessage(ring, *message, report);
      if (absl::IsInvalidArgument(handled)) {
        MOERL_LOG(ERROR) << "scorer: dropping malformed message: " << handled.message();
        ++report->malformed_dropped;
        if (message->ticket != 0) MOERL_RETURN_IF_ERROR(ring.Ack(message->ticket));
        continue;
      }
      MOERL_RETURN_IF_ERROR(handled);
      MOERL_RETURN_IF_ERROR(WriteReadyBatches(ring, /*flush=*/false, report));
      continue;
    }
    if (absl::IsOutOfRange(message.status())) break;
    if (!absl::IsDeadlineExceeded(message.status()) && !absl::IsUnavailable(message.status())) {
      return Annotate(message.status(), "reading the trajectory ring");
    }
    if (should_stop && should_stop()) return absl::OkStatus();  // unacked: redelivered later
    const RingStats stats = ring.Stats();
    const bool producers_done =
        stats.producers_open == 0 && stats.producers_closed > 0 && stats.depth_messages == 0;
    if (producers_done && !flushed) {
      // Nothing more can arrive: write what is complete, give up the rest.
      MOERL_RETURN_IF_ERROR(WriteReadyBatches(ring, /*flush=*/true, report));
      for (auto& [group_id, group] : pending_) {
        ++report->incomplete_groups_dropped;
        for (uint64_t ticket : group.tickets) {
          if (ticket != 0) MOERL_RETURN_IF_ERROR(ring.Ack(ticket));
        }
      }
      pending_.clear();
      flushed = true;
    }
  }
  return WriteReadyBatches(ring, /*flush=*/true, report);
}

}  // namespace moerl
