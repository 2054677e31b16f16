#include "rollout/bridge.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/proto/formats.h"
#include "common/status.h"
#include "common/weights_dir.h"
#include "nlohmann/json.hpp"
#include "rollout/group_id.h"
#include "rollout/probe.h"

namespace moerl {

absl::Status BridgeConfig::Validate() const {
  if (n_samples < 1) return absl::InvalidArgumentError("gconfig.n_samples must be >= 1");
  if (sampling.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("gconfig.max_new_tokens must be >= 1, got ", sampling.max_new_tokens));
  }
  if (max_concurrent_rollouts < 1 || consumer_batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rollout.max_concurrent_rollouts (", max_concurrent_rollouts,
        ") and rollout.consumer_batch_size (", consumer_batch_size, ") must be >= 1"));
  }
  if (max_head_offpolicyness < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rollout.max_head_offpolicyness must be >= 0, got ", max_head_offpolicyness));
  }
  if (request_retries < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rollout.request_retries must be >= 0, got ", request_retries));
  }
  if (request_timeout <= absl::ZeroDuration() || setup_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("rollout.request_timeout and rollout.setup_timeout must be > 0");
  }
  if (weights_dir.empty()) return absl::InvalidArgumentError("rollout.weights_dir is empty");
  if (!(probe_tolerance >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rollout.probe_tolerance must be >= 0, got ", probe_tolerance));
  }
  return absl::OkStatus();
}

namespace {

// One completion being generated.
struct Sample {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::vector<int64_t> versions;
  std::vector<int32_t> routes;
  int64_t routes_width = 0;
  bool routes_valid = true;  // false once a segment came back without routes
  proto::FinishReason finish = proto::FINISH_REASON_UNSPECIFIED;
  int server = -1;  // sticky: the server of the previous segment
};

struct Group {
  proto::Prompt prompt;
  uint64_t ticket = 0;
  int64_t max_new_tokens = 0;
  std::vector<Sample> samples;
  int remaining = 0;  // samples not finished
};

// Threads for requests in flight; past this, samples queue for a free one.
constexpr int64_t kMaxWorkers = 1024;

struct ServerState {
  std::unique_ptr<InferenceClient> client;
  bool down = false;     // failed; polled with /health
  bool refused = false;  // failed its probe: never used again
  int64_t in_flight = 0;
  int64_t failures_in_a_row = 0;  // requests, across samples
};

}  // namespace

class RolloutBridge::Impl {
 public:
  Impl(BridgeConfig config, std::vector<std::unique_ptr<InferenceClient>> clients,
       TokenDecoder decode)
      : config_(std::move(config)), decode_(std::move(decode)) {
    for (auto& client : clients) {
      servers_.push_back(ServerState{std::move(client)});
    }
  }

  ~Impl() { Shutdown(); }

  absl::Status Run(MessageRing& prompts, MessageRing& out, BridgeReport* report,
                   const std::function<bool()>& should_stop);

 private:
  bool StopRequested() {
    absl::MutexLock lock(&mu_);
    return stop_;
  }
  void Fail(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (fatal_.ok()) fatal_ = std::move(status);
    stop_ = true;
  }
  void Shutdown();

  absl::Status Setup();
  absl::Status UpdateTo(int64_t version);
  // update_weights_from_disk, continue_generation, then the probe (if any):
  // FailedPrecondition when the server disagrees with it.
  absl::Status LoadOn(int server, const std::string& path, int64_t version, const Probe* probe);
  void Watch();
  void ReviveDownServers();
  void MarkDown(int server, const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int PickServer(int preferred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void StartGroup(proto::Prompt prompt, uint64_t ticket, int64_t max_new_tokens);
  void Work();
  void RunSample(Group* group, int index);
  absl::Status Generate(Group* group, Sample* sample);
  absl::StatusOr<std::string> GroupMessage(const Group& group, int64_t version,
                                           int64_t* staleness);
  int64_t Capacity() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const BridgeConfig config_;
  const TokenDecoder decode_;

  absl::Mutex mu_;
  std::vector<ServerState> servers_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = true;  // until the first version is loaded
  int64_t version_ ABSL_GUARDED_BY(mu_) = -1;
  int next_server_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t routed_top_k_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::unique_ptr<Group>> done_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Group>> groups_ ABSL_GUARDED_BY(mu_);  // running
  BridgeReport stats_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<Group*, int>> tasks_ ABSL_GUARDED_BY(mu_);  // samples to start
  std::vector<std::thread> threads_;  // workers: one per concurrent request
  std::thread watcher_;
  int64_t unpinnable_version_ = -1;  // watcher thread only: logged once
};

void RolloutBridge::Impl::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    for (ServerState& s : servers_) s.client->Cancel();
  }
  if (watcher_.joinable()) watcher_.join();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void RolloutBridge::Impl::MarkDown(int server, const absl::Status& why) {
  ServerState& s = servers_[server];
  if (s.down || s.refused) return;
  s.down = true;
  const std::string line = absl::StrCat(s.client->address(), ": ", why.message());
  MOERL_LOG(WARNING) << "server " << s.client->address()
                     << " is down; its samples continue elsewhere: " << why.message();
  stats_.servers_down.push_back(line);
}

int RolloutBridge::Impl::PickServer(int preferred) {
  if (preferred >= 0 && !servers_[preferred].down && !servers_[preferred].refused) {
    return preferred;
  }
  // Least loaded; ties go round-robin.
  const int n = static_cast<int>(servers_.size());
  int best = -1;
  for (int k = 0; k < n; ++k) {
    const int i = (next_server_ + k) % n;
    const ServerState& s = servers_[i];
    if (s.down || s.refused) continue;
    if (best < 0 || s.in_flight < servers_[best].in_flight) best = i;
  }
  next_server_ = (next_server_ + 1) % n;
  return best;
}

int64_t RolloutBridge::Impl::Capacity() {
  const int64_t concurrency = config_.max_concurrent_rollouts - running_;
  const int64_t staleness =
      (config_.max_head_offpolicyness + version_ + 1) * config_.consumer_batch_size -
      (accepted_ + running_);
  return std::min(concurrency, staleness);
}

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
        return absl::FailedPreconditionError(absl::StrCat(
            "server ", client->address(), " disagrees with ", path, "/probe.json sequence ", i,
            ": ", mismatch.message()));
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
    return absl::FailedPreconditionError(absl::StrCat(
        "every server failed the probe of version ", version, ": ",
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
          "no ", config_.weights_dir, "/LATEST within rollout.setup_timeout=",
          absl::FormatDuration(config_.setup_timeout)));
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

// ---------------------------------------------------------------- generation

absl::Status RolloutBridge::Impl::Generate(Group* group, Sample* sample) {
  int64_t failures = 0;
  int64_t remaining = group->max_new_tokens;
  // A sample that makes no progress for setup_timeout (every server down,
  // or servers that pass /health but fail every request) ends the run.
  absl::Time last_progress = absl::Now();
  auto no_progress = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return absl::UnavailableError(absl::StrCat(
        "group ", GroupId(group->prompt), ": no answer from any server for rollout.setup_timeout=",
        absl::FormatDuration(config_.setup_timeout), "; went down: ",
        absl::StrJoin(stats_.servers_down, "; ")));
  };
  while (true) {
    int server;
    InferenceClient* client;
    int64_t bridge_version;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || !paused_; };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return absl::CancelledError("stopping");
      if (remaining <= 0) {
        sample->finish = proto::FINISH_REASON_LENGTH;  // an abort used up the budget
        return absl::OkStatus();
      }
      server = PickServer(sample->server);
      if (server < 0) {
        // Every server is down: wait for one to come back.
        if (absl::Now() - last_progress > config_.setup_timeout) return no_progress();
        mu_.AwaitWithTimeout(absl::Condition(&stop_), config_.poll_interval);
        continue;
      }
      sample->server = server;
      ++servers_[server].in_flight;
      client = servers_[server].client.get();
      bridge_version = version_;
      ++stats_.requests;
    }
    GenerationRequest request;
    request.input_ids.assign(group->prompt.tokens().begin(), group->prompt.tokens().end());
    request.input_ids.insert(request.input_ids.end(), sample->tokens.begin(),
                             sample->tokens.end());
    request.sampling = config_.sampling;
    request.sampling.max_new_tokens = remaining;
    request.sampling.min_new_tokens = std::max<int64_t>(
        0, config_.sampling.min_new_tokens - static_cast<int64_t>(sample->tokens.size()));
    request.return_routed_experts = config_.return_routed_experts;
    absl::StatusOr<Generation> g = client->Generate(request, config_.request_timeout);
    if (g.ok() && (g->output_logprobs.size() != g->output_tokens.size() ||
                   static_cast<int64_t>(g->output_tokens.size()) > remaining)) {
      g = absl::UnavailableError(absl::StrCat(
          "/generate on ", client->address(), " answered ", g->output_tokens.size(),
          " tokens and ", g->output_logprobs.size(), " log-probs for max_new_tokens=", remaining));
    }
    absl::MutexLock lock(&mu_);
    --servers_[server].in_flight;
    if (stop_) return absl::CancelledError("stopping");
    if (!g.ok()) {
      if (absl::IsInvalidArgument(g.status())) {
        return Annotate(g.status(), absl::StrCat("group ", GroupId(group->prompt)));
      }
      ++stats_.retries;
      ++failures;
      if (absl::Now() - last_progress > config_.setup_timeout) {
        MarkDown(server, g.status());
        return no_progress();
      }
      MOERL_LOG(WARNING) << "group " << GroupId(group->prompt) << " sample: attempt " << failures
                         << " failed: " << g.status().message();
      // Down after request_retries + 1 failures in a row: of this sample on
      // it, or of the server across samples.
      const bool server_failing = ++servers_[server].failures_in_a_row > config_.request_retries;
      if (failures > config_.request_retries || server_failing) {
        MarkDown(server, g.status());
        failures = 0;
        sample->server = -1;
        continue;
      }
      const absl::Duration backoff =
          std::min(config_.retry_backoff * (int64_t{1} << std::min<int64_t>(failures - 1, 16)),
                   absl::Seconds(10));
      mu_.AwaitWithTimeout(absl::Condition(&stop_), backoff);
      continue;
    }
    failures = 0;
    servers_[server].failures_in_a_row = 0;
    last_progress = absl::Now();
    int64_t token_version = bridge_version;
    if (int64_t v; absl::SimpleAtoi(g->weight_version, &v) && v >= 0) token_version = v;
    const size_t n = g->output_tokens.size();
    sample->tokens.insert(sample->tokens.end(), g->output_tokens.begin(), g->output_tokens.end());
    sample->logprobs.insert(sample->logprobs.end(), g->output_logprobs.begin(),
                            g->output_logprobs.end());
    sample->versions.insert(sample->versions.end(), n, token_version);
    if (n > 0) {
      const bool same_width =
          sample->routes_width == 0 || sample->routes_width == g->routed_experts_width;
      if (g->routed_experts_width > 0 && same_width &&
          g->routed_experts.size() == n * static_cast<size_t>(g->routed_experts_width)) {
        sample->routes_width = g->routed_experts_width;
        sample->routes.insert(sample->routes.end(), g->routed_experts.begin(),
                              g->routed_experts.end());
      } else {
        sample->routes_valid = false;
      }
    }
    remaining -= static_cast<int64_t>(n);
    switch (g->finish) {
      case GenerationFinish::kStop:
        sample->finish = proto::FINISH_REASON_STOP;
        return absl::OkStatus();
      case GenerationFinish::kLength:
        sample->finish = proto::FINISH_REASON_LENGTH;
        return absl::OkStatus();
      case GenerationFinish::kAbort:
        ++stats_.resubmissions;  // resumes after the update, from the tokens so far
        continue;
    }
  }
}

void RolloutBridge::Impl::RunSample(Group* group, int index) {
  absl::Status status = Generate(group, &group->samples[index]);
  absl::MutexLock lock(&mu_);
  if (absl::IsCancelled(status)) return;
  if (!status.ok()) {
    Fail(status);
    return;
  }
  if (--group->remaining > 0) return;
  auto it = std::find_if(groups_.begin(), groups_.end(),
                         [group](const std::unique_ptr<Group>& g) { return g.get() == group; });
  done_.push_back(std::move(*it));
  groups_.erase(it);
}

void RolloutBridge::Impl::StartGroup(proto::Prompt prompt, uint64_t ticket,
                                     int64_t max_new_tokens) {
  auto group = std::make_unique<Group>();
  group->prompt = std::move(prompt);
  group->ticket = ticket;
  group->max_new_tokens = max_new_tokens;
  group->samples.resize(config_.n_samples);
  group->remaining = static_cast<int>(config_.n_samples);
  Group* raw = group.get();
  absl::MutexLock lock(&mu_);
  groups_.push_back(std::move(group));
  ++running_;
  for (uint32_t i = 0; i < config_.n_samples; ++i) tasks_.emplace_back(raw, static_cast<int>(i));
}

void RolloutBridge::Impl::Work() {
  while (true) {
    std::pair<Group*, int> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || !tasks_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      task = tasks_.front();
      tasks_.pop_front();
    }
    RunSample(task.first, task.second);
  }
}

absl::StatusOr<std::string> RolloutBridge::Impl::GroupMessage(const Group& group, int64_t version,
                                                              int64_t* staleness) {
  proto::TrajectoryBatch batch;
  batch.set_format_version(kTrajectoryBatchFormatVersion);
  batch.set_group_size(config_.n_samples);
  int64_t top_k;
  {
    absl::MutexLock lock(&mu_);
    top_k = routed_top_k_;
  }
  *staleness = 0;
  for (uint32_t i = 0; i < config_.n_samples; ++i) {
    const Sample& s = group.samples[i];
    proto::Trajectory* t = batch.add_trajectories();
    t->set_format_version(kTrajectoryFormatVersion);
    t->set_prompt_id(group.prompt.id());
    t->set_group_id(GroupId(group.prompt));
    t->set_sample_index(i);
    t->mutable_prompt_tokens()->CopyFrom(group.prompt.tokens());
    t->mutable_output_tokens()->Add(s.tokens.begin(), s.tokens.end());
    t->mutable_output_logprobs()->Add(s.logprobs.begin(), s.logprobs.end());
    t->mutable_output_versions()->Add(s.versions.begin(), s.versions.end());
    t->set_finish_reason(s.finish);
    t->set_gold_answer(group.prompt.gold_answer());
    absl::StatusOr<std::string> text = decode_ ? decode_(s.tokens) : std::string();
    if (!text.ok()) {
      return Annotate(text.status(), absl::StrCat("decoding group ", GroupId(group.prompt)));
    }
    t->set_output_text(*std::move(text));
    if (s.routes_valid && s.routes_width > 0 && !s.tokens.empty()) {
      t->mutable_routed_experts()->Add(s.routes.begin(), s.routes.end());
      const int64_t k = top_k > 0 && s.routes_width % top_k == 0 ? top_k : s.routes_width;
      t->set_routed_experts_top_k(static_cast<uint32_t>(k));
      t->set_routed_experts_layers(static_cast<uint32_t>(s.routes_width / k));
    }
    if (!s.versions.empty()) {
      *staleness = std::max(*staleness,
                            version - *std::min_element(s.versions.begin(), s.versions.end()));
    }
  }
  return batch.SerializeAsString();
}

// ---------------------------------------------------------------- the loop

absl::Status RolloutBridge::Impl::Run(MessageRing& prompts, MessageRing& out,
                                      BridgeReport* report,
                                      const std::function<bool()>& should_stop) {
  MOERL_RETURN_IF_ERROR(config_.Validate());
  absl::Status status = Setup();
  if (status.ok()) {
    watcher_ = std::thread([this] { Watch(); });
    const int64_t workers =
        std::min<int64_t>(config_.max_concurrent_rollouts * config_.n_samples, kMaxWorkers);
    for (int64_t i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
  }
  bool end_of_prompts = false;
  bool stopped = false;
  while (status.ok()) {
    if (should_stop && should_stop()) {
      stopped = true;
      break;
    }
    // Push finished groups, then acknowledge their prompts.
    std::unique_ptr<Group> finished;
    int64_t version = 0;
    {
      absl::MutexLock lock(&mu_);
      if (!fatal_.ok()) {
        status = fatal_;
        break;
      }
      if (!done_.empty()) {
        finished = std::move(done_.front());
        done_.pop_front();
      }
      version = version_;
    }
    if (finished != nullptr) {
      int64_t staleness = 0;
      absl::StatusOr<std::string> message = GroupMessage(*finished, version, &staleness);
      if (!message.ok()) {
        status = message.status();
        break;
      }
      while (true) {
        status = out.Push(*message, absl::Milliseconds(100));
        if (!absl::IsDeadlineExceeded(status)) break;
        if ((should_stop && should_stop()) || StopRequested()) break;
      }
      if (!status.ok()) break;
      status = prompts.Ack(finished->ticket);
      if (!status.ok()) break;
      absl::MutexLock lock(&mu_);
      --running_;
      ++accepted_;
      ++stats_.groups_pushed;
      stats_.trajectories_pushed += config_.n_samples;
      stats_.max_push_staleness = std::max(stats_.max_push_staleness, staleness);
      continue;
    }
    bool admit;
    bool idle;
    {
      absl::MutexLock lock(&mu_);
      if (end_of_prompts && running_ == 0 && done_.empty()) break;
      admit = !end_of_prompts && !paused_ && Capacity() > 0;
      idle = running_ == 0 && done_.empty();
      if (!admit) {
        auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return !done_.empty() || stop_ || !fatal_.ok();
        };
        mu_.AwaitWithTimeout(absl::Condition(&wake), absl::Milliseconds(20));
      }
    }
    if (!admit) {
      // Held back by the staleness rule with nothing in flight: the prompts
      // may have ended meanwhile, and then there is nothing to wait for.
      if (idle && !end_of_prompts && prompts.Stats().end_of_stream) end_of_prompts = true;
      continue;
    }
    absl::StatusOr<RingMessage> message = prompts.Pop(absl::Milliseconds(20));
    if (absl::IsDeadlineExceeded(message.status())) continue;
    if (absl::IsOutOfRange(message.status())) {
      end_of_prompts = true;
      continue;
    }
    if (!message.ok()) {
      status = message.status();
      break;
    }
    proto::Prompt prompt;
    std::string problem;
    if (!prompt.ParseFromString(message->payload)) {
      problem = "does not parse as a Prompt";
    } else if (prompt.format_version() != kPromptFormatVersion) {
      problem = absl::StrCat("has format_version ", prompt.format_version(), ", expected ",
                             kPromptFormatVersion);
    } else if (prompt.tokens().empty()) {
      problem = "has no tokens";
    }
    const int64_t max_new = std::min<int64_t>(
        config_.max_tokens - prompt.tokens_size(), config_.sampling.max_new_tokens);
    if (problem.empty() && max_new <= 0) {
      problem = absl::StrCat("has ", prompt.tokens_size(), " tokens, leaving no room under gconfig.max_tokens=",
                             config_.max_tokens);
    }
    {
      absl::MutexLock lock(&mu_);
      ++stats_.prompts_taken;
      if (message->delivery_count > 1) ++stats_.prompts_redelivered;
      if (!problem.empty()) ++stats_.prompts_dropped;
    }
    if (!problem.empty()) {
      // A dead letter: logged and acknowledged so that it cannot block every restart.
      MOERL_LOG(ERROR) << "dropping prompt (ticket " << message->ticket << ", id '" << prompt.id()
                       << "'): it " << problem;
      status = prompts.Ack(message->ticket);
      continue;
    }
    StartGroup(std::move(prompt), message->ticket, max_new);
  }
  if (stopped) MOERL_LOG(INFO) << "bridge: stop requested; groups in flight are left to a restart";
  Shutdown();
  {
    absl::MutexLock lock(&mu_);
    *report = stats_;
  }
  // A failed bridge leaves its producer open: consumers then see it as died.
  if (status.ok()) status = out.CloseProducer();
  MOERL_LOG(INFO) << "bridge: " << report->groups_pushed << " groups pushed ("
                  << report->prompts_taken << " prompts taken, " << report->requests
                  << " requests, " << report->resubmissions << " resubmissions, "
                  << report->retries << " retries, " << report->weight_updates
                  << " weight updates, version " << report->version << ")";
  return status;
}

RolloutBridge::RolloutBridge(BridgeConfig config,
                             std::vector<std::unique_ptr<InferenceClient>> servers,
                             TokenDecoder decode)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(servers), std::move(decode))) {}

RolloutBridge::~RolloutBridge() = default;

absl::Status RolloutBridge::Run(MessageRing& prompts, MessageRing& trajectories,
                                BridgeReport* report, const std::function<bool()>& should_stop) {
  return impl_->Run(prompts, trajectories, report, should_stop);
}

}  // namespace moerl
