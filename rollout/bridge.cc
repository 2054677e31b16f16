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
#include "rollout/bridge_impl.h"
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
    return absl::InvalidArgumentError(
        absl::StrCat("rollout.max_concurrent_rollouts (", max_concurrent_rollouts,
                     ") and rollout.consumer_batch_size (", consumer_batch_size, ") must be >= 1"));
  }
  if (max_head_offpolicyness < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rollout.max_head_offpolicyness must be >= 0, got ", max_head_offpolicyness));
  }
  if (request_retries < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rollout.request_retries must be >= 0, got ", request_retries));
  }
  if (request_timeout <= absl::ZeroDuration() || setup_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "rollout.request_timeout and rollout.setup_timeout must be > 0");
  }
  if (weights_dir.empty()) return absl::InvalidArgumentError("rollout.weights_dir is empty");
  if (!(probe_tolerance >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rollout.probe_tolerance must be >= 0, got ", probe_tolerance));
  }
  return absl::OkStatus();
}

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

// ---------------------------------------------------------------- generation

int64_t RequestSamplingSeed(uint64_t base, const std::string& group_id, int64_t sample_index,
                            int64_t tokens_so_far) {
  auto mix = [](uint64_t x) {  // SplitMix64's finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the group id
  for (unsigned char c : group_id) h = (h ^ c) * 0x100000001b3ull;
  h = mix(h ^ mix(base));
  h = mix(h ^ static_cast<uint64_t>(sample_index));
  h = mix(h ^ static_cast<uint64_t>(tokens_so_far));
  return static_cast<int64_t>(h >> 1);
}

absl::Status RolloutBridge::Impl::Generate(Group* group, Sample* sample) {
  int64_t failures = 0;
  int64_t remaining = group->max_new_tokens;
  // A sample that makes no progress for setup_timeout (every server down,
  // or servers that pass /health but fail every request) ends the run.
  absl::Time last_progress = absl::Now();
  auto no_progress = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return absl::UnavailableError(absl::StrCat(
        "group ", GroupId(group->prompt), ": no answer from any server for rollout.setup_timeout=",
        absl::FormatDuration(config_.setup_timeout),
        "; went down: ", absl::StrJoin(stats_.servers_down, "; ")));
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
    request.input_ids.insert(request.input_ids.end(), sample->tokens.begin(), sample->tokens.end());
    request.sampling = config_.sampling;
    request.sampling.max_new_tokens = remaining;
    request.sampling.min_new_tokens = std::max<int64_t>(
        0, config_.sampling.min_new_tokens - static_cast<int64_t>(sample->tokens.size()));
    request.return_routed_experts = config_.return_routed_experts;
    if (config_.sampling_seed_base) {
      request.sampling.sampling_seed = RequestSamplingSeed(
          *config_.sampling_seed_base, GroupId(group->prompt), sample - group->samples.data(),
          static_cast<int64_t>(sample->tokens.size()));
    }
    absl::StatusOr<Generation> g = client->Generate(request, config_.request_timeout);
    if (g.ok() && (g->output_logprobs.size() != g->output_tokens.size() ||
                   static_cast<int64_t>(g->output_tokens.size()) > remaining)) {
      g = absl::UnavailableError(absl::StrCat(
          "/generate on ", client->address(), " answered ", g->output_tokens.size(), " tokens and ",
          g->output_logprobs.size(), " log-probs for max_new_tokens=", remaining));
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

void RolloutBridge::Impl::StartGroup(proto::Prompt prompt, uint64_t delivery,
                                     int64_t max_new_tokens) {
  auto group = std::make_unique<Group>();
  group->prompt = std::move(prompt);
  group->delivery = delivery;
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
      *staleness =
          std::max(*staleness, version - *std::min_element(s.versions.begin(), s.versions.end()));
    }
  }
  return batch.SerializeAsString();
}

// ---------------------------------------------------------------- the loop

absl::Status RolloutBridge::Impl::Run(MessageRing& prompts, MessageRing& out, BridgeReport* report,
                                      const std::function<bool()>& should_stop) {
  MOERL_RETURN_IF_ERROR(config_.Validate());
  absl::Status status = Setup();
  if (status.ok()) {
    watcher_ = std::thread([this] { Watch(); });
    const int64_t workers = std::min<int64_t>(config_.max_concurrent_rollouts * config_.n_samples,
                                              bridge_internal::kMaxWorkers);
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
      absl::StatusOr<std::string> message;
      {
        ScopedStageTimer t(timing_, TimeBucket::kTransport);
        message = GroupMessage(*finished, version, &staleness);
      }
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
      status = prompts.Ack(finished->delivery);
      if (!status.ok()) break;
      absl::MutexLock lock(&mu_);
      --running_;
      ++accepted_;
      ++stats_.groups_pushed;
      stats_.trajectories_pushed += config_.n_samples;
      stats_.max_push_staleness = std::max(stats_.max_push_staleness, staleness);
      if (timing_ != nullptr) {
        int64_t tokens = 0;
        for (const Sample& sample : finished->samples) {
          tokens += static_cast<int64_t>(sample.tokens.size());
        }
        timing_->Count("completion_tokens_pushed", tokens);
        timing_->Count("groups_pushed", 1);
      }
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
        // Waiting for generations (or, held by the staleness rule, for weights).
        ScopedStageTimer t(timing_, TimeBucket::kWaitInput);
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
    bool parsed;
    {
      ScopedStageTimer t(timing_, TimeBucket::kTransport);
      parsed = prompt.ParseFromString(message->payload);
    }
    if (!parsed) {
      problem = "does not parse as a Prompt";
    } else if (prompt.format_version() != kPromptFormatVersion) {
      problem = absl::StrCat("has format_version ", prompt.format_version(), ", expected ",
                             kPromptFormatVersion);
    } else if (prompt.tokens().empty()) {
      problem = "has no tokens";
    }
    const int64_t max_new = std::min<int64_t>(config_.max_tokens - prompt.tokens_size(),
                                              config_.sampling.max_new_tokens);
    if (problem.empty() && max_new <= 0) {
      problem =
          absl::StrCat("has ", prompt.tokens_size(),
                       " tokens, leaving no room under gconfig.max_tokens=", config_.max_tokens);
    }
    {
      absl::MutexLock lock(&mu_);
      ++stats_.prompts_taken;
      if (message->delivery_count > 1) ++stats_.prompts_redelivered;
      if (!problem.empty()) ++stats_.prompts_dropped;
    }
    if (!problem.empty()) {
      // A dead letter: logged and acknowledged so that it cannot block every restart.
      MOERL_LOG(ERROR) << "dropping prompt (delivery " << message->ticket << ", id '" << prompt.id()
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
                  << " requests, " << report->resubmissions << " resubmissions, " << report->retries
                  << " retries, " << report->weight_updates << " weight updates, version "
                  << report->version << ")";
  return status;
}

RolloutBridge::RolloutBridge(BridgeConfig config,
                             std::vector<std::unique_ptr<InferenceClient>> servers,
                             TokenDecoder decode, StageTiming* timing)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(servers), std::move(decode),
                                   timing)) {}

RolloutBridge::~RolloutBridge() = default;

absl::Status RolloutBridge::Run(MessageRing& prompts, MessageRing& trajectories,
                                BridgeReport* report, const std::function<bool()>& should_stop) {
  return impl_->Run(prompts, trajectories, report, should_stop);
}

}  // namespace moerl
