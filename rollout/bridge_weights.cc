// RolloutBridge: setup, weight updates from weights/LATEST, probes, and
// taking back servers that went down (bridge.h has the contract).
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/weights_dir.h"
#include "rollout/bridge.h"
#include "rollout/bridge_impl.h"
#include "rollout/probe.h"

namespace moerl {

// ---------------------------------------------------------------- weights

absl::Status RolloutBridge::Impl::LoadOn(int server, const std::string& path, int64_t version,
                                         const Probe* probe) {
  InferenceClient* client;
  {
    absl::MutexLock lock(&mu_);
    client = servers_[server].client.get();
  }
  MOERL_RETURN_IF_ERROR(client->UpdateWeightsFromDisk(path, version, config_.control_timeout));
  // The probe is a /generate, which a paused server holds: continue first.
  // The bridge itself stays paused until every probe is done, so nothing
  // but the probe reaches the server before it passed.
  MOERL_RETURN_IF_ERROR(client->ContinueGeneration(config_.control_timeout));
  if (probe != nullptr) {
    for (size_t i = 0; i < probe->sequences.size(); ++i) {
      const ProbeSequence& seq = probe->sequences[i];
      MOERL_ASSIGN_OR_RETURN(std::vector<double> got,
                             client->ScoreTokens(seq.input_ids, config_.control_timeout));
      absl::Status mismatch = CompareProbe(seq, got, config_.probe_tolerance);
      if (!mismatch.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("server ", client->address(), " disagrees with ", path,
                         "/probe.json sequence ", i, ": ", mismatch.message()));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status RolloutBridge::Impl::UpdateTo(int64_t version) {
  // Pin and read the version before pausing anything: a version that cannot
  // be loaded leaves generation running on the current weights.
  absl::StatusOr<VersionPin> pin = VersionPin::Acquire(config_.weights_dir, version);
  if (!pin.ok()) {
    // Removed or being removed (a newer LATEST follows): retried next poll.
    if (version != unpinnable_version_) {
      MOERL_LOG(WARNING) << "weights: cannot pin version " << version << ": " << pin.status();
      unpinnable_version_ = version;
    }
    return absl::OkStatus();
  }
  MOERL_ASSIGN_OR_RETURN(std::optional<Probe> probe,
                         ReadProbeFile(absl::StrCat(pin->path(), "/probe.json")));
  if (!probe.has_value()) {
    MOERL_LOG(WARNING) << "weights: " << pin->path()
                       << "/probe.json is missing; servers are loaded unchecked";
  }
  const int64_t top_k = ReadNumExpertsPerToken(pin->path());
  MOERL_LOG(INFO) << "weights: loading version " << version;
  std::vector<int> usable;
  {
    absl::MutexLock lock(&mu_);
    paused_ = true;
    for (int i = 0; i < static_cast<int>(servers_.size()); ++i) {
      if (!servers_[i].down && !servers_[i].refused) usable.push_back(i);
    }
  }
  for (int i : usable) {
    InferenceClient* client;
    {
      absl::MutexLock lock(&mu_);
      client = servers_[i].client.get();
    }
    absl::Status paused = client->PauseGeneration(config_.control_timeout);
    if (!paused.ok()) {
      absl::MutexLock lock(&mu_);
      MarkDown(i, paused);
    }
  }
  if (config_.pause_grace_period > absl::ZeroDuration()) absl::SleepFor(config_.pause_grace_period);
  // Load everywhere at once, as AReaL does.
  std::vector<absl::Status> results(servers_.size());
  {
    std::vector<std::thread> loaders;
    const Probe* p = probe.has_value() ? &*probe : nullptr;
    for (int i : usable) {
      loaders.emplace_back([&, i] { results[i] = LoadOn(i, pin->path(), version, p); });
    }
    for (std::thread& t : loaders) t.join();
  }
  {
    absl::MutexLock lock(&mu_);
    for (int i : usable) {
      if (results[i].ok()) continue;
      if (absl::IsFailedPrecondition(results[i])) {
        servers_[i].refused = true;
        MOERL_LOG(ERROR) << "refusing server " << servers_[i].client->address() << ": "
                         << results[i].message();
        stats_.servers_refused.push_back(
            absl::StrCat(servers_[i].client->address(), ": ", results[i].message()));
      } else {
        MarkDown(i, results[i]);
      }
    }
  }
  absl::MutexLock lock(&mu_);
  bool all_refused = true;
  for (const ServerState& s : servers_) all_refused = all_refused && s.refused;
  if (all_refused) {
    return absl::FailedPreconditionError(absl::StrCat("every server failed the probe of version ",
                                                      version, ": ",
                                                      absl::StrJoin(stats_.servers_refused, "; ")));
  }
  if (version_ >= 0) ++stats_.weight_updates;
  version_ = version;
  routed_top_k_ = top_k;
  stats_.version = version;
  MOERL_LOG(INFO) << "weights: version " << version << " loaded";
  paused_ = false;
  return absl::OkStatus();
}

void RolloutBridge::Impl::ReviveDownServers() {
  std::vector<int> down;
  int64_t version;
  {
    absl::MutexLock lock(&mu_);
    for (int i = 0; i < static_cast<int>(servers_.size()); ++i) {
      if (servers_[i].down && !servers_[i].refused) down.push_back(i);
    }
    version = version_;
  }
  for (int i : down) {
    InferenceClient* client;
    {
      absl::MutexLock lock(&mu_);
      client = servers_[i].client.get();
    }
    if (!client->Health(absl::Seconds(5)).ok()) continue;
    // It may have missed updates (or restarted on other weights): load and check.
    absl::StatusOr<VersionPin> pin = VersionPin::Acquire(config_.weights_dir, version);
    if (!pin.ok()) continue;
    absl::StatusOr<std::optional<Probe>> probe =
        ReadProbeFile(absl::StrCat(pin->path(), "/probe.json"));
    if (!probe.ok()) continue;
    absl::Status loaded = LoadOn(i, pin->path(), version, probe->has_value() ? &**probe : nullptr);
    absl::MutexLock lock(&mu_);
    if (loaded.ok() && version == version_) {
      servers_[i].down = false;
      servers_[i].failures_in_a_row = 0;
      MOERL_LOG(INFO) << "server " << client->address() << " is back (version " << version << ")";
    } else if (absl::IsFailedPrecondition(loaded)) {
      servers_[i].refused = true;
      stats_.servers_refused.push_back(absl::StrCat(client->address(), ": ", loaded.message()));
      MOERL_LOG(ERROR) << "refusing server " << client->address() << ": " << loaded.message();
    }
  }
}

void RolloutBridge::Impl::Watch() {
  absl::Time last_revive = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopped = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopped), config_.poll_interval)) return;
    }
    absl::StatusOr<int64_t> latest = ReadLatestVersion(config_.weights_dir);
    int64_t current;
    {
      absl::MutexLock lock(&mu_);
      current = version_;
    }
    if (latest.ok() && *latest > current) {
      absl::Status updated = UpdateTo(*latest);
      if (!updated.ok()) {
        absl::MutexLock lock(&mu_);
        Fail(updated);
        return;
      }
    } else if (!latest.ok() && !absl::IsNotFound(latest.status())) {
      MOERL_LOG(WARNING) << "weights: " << latest.status();
    }
    if (absl::Now() - last_revive >= config_.revive_interval) {
      ReviveDownServers();
      last_revive = absl::Now();
    }
  }
}

absl::Status RolloutBridge::Impl::Setup() {
  const absl::Time deadline = absl::Now() + config_.setup_timeout;
  // Some version must exist (the trainer publishes v0 before its first step).
  absl::StatusOr<int64_t> latest;
  while (true) {
    latest = ReadLatestVersion(config_.weights_dir);
    if (latest.ok() || !absl::IsNotFound(latest.status())) break;
    if (absl::Now() >= deadline || StopRequested()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no ", config_.weights_dir,
          "/LATEST within rollout.setup_timeout=", absl::FormatDuration(config_.setup_timeout)));
    }
    absl::SleepFor(config_.poll_interval);
  }
  MOERL_RETURN_IF_ERROR(latest.status());
  // Wait for the servers, as AReaL polls /health.
  std::vector<std::string> unhealthy;
  {
    std::vector<InferenceClient*> clients;
    {
      absl::MutexLock lock(&mu_);
      for (ServerState& s : servers_) clients.push_back(s.client.get());
    }
    std::vector<bool> healthy(clients.size(), false);
    while (true) {
      size_t ok = 0;
      std::vector<std::string> why;
      for (size_t i = 0; i < clients.size(); ++i) {
        if (!healthy[i]) {
          const absl::Status health = clients[i]->Health(absl::Seconds(5));
          healthy[i] = health.ok();
          if (!health.ok()) why.push_back(std::string(health.message()));
        }
        ok += healthy[i];
      }
      if (ok == clients.size()) break;
      if (absl::Now() >= deadline || StopRequested()) {
        if (ok == 0) {
          return absl::UnavailableError(absl::StrCat(
              "no server answered /health within rollout.setup_timeout=",
              absl::FormatDuration(config_.setup_timeout), ": ", absl::StrJoin(why, "; ")));
        }
        absl::MutexLock lock(&mu_);
        for (size_t i = 0; i < clients.size(); ++i) {
          if (!healthy[i]) MarkDown(i, absl::UnavailableError("not healthy at start"));
        }
        break;
      }
      absl::SleepFor(absl::Seconds(1));
    }
  }
  // Servers may run other weights than LATEST names: load it everywhere.
  MOERL_RETURN_IF_ERROR(UpdateTo(*latest));
  absl::MutexLock lock(&mu_);
  if (version_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load version ", *latest, " from ", config_.weights_dir));
  }
  accepted_ = version_ * config_.consumer_batch_size;  // AReaL's reset after recovery
  return absl::OkStatus();
}

}  // namespace moerl
