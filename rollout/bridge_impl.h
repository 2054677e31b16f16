// RolloutBridge's private parts, shared by bridge.cc (dispatch, generation,
// the ring loop) and bridge_weights.cc (setup, weight updates, probes,
// reviving servers). Not part of the interface: include bridge.h.
#ifndef MOERL_ROLLOUT_BRIDGE_IMPL_H_
#define MOERL_ROLLOUT_BRIDGE_IMPL_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "rollout/bridge.h"
#include "rollout/probe.h"

namespace moerl {
namespace bridge_internal {

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
  uint64_t delivery = 0;  // the prompt's RingMessage id, acknowledged after the push
  int64_t max_new_tokens = 0;
  std::vector<Sample> samples;
  int remaining = 0;  // samples not finished
};

// Threads for requests in flight; past this, samples queue for a free one.
inline constexpr int64_t kMaxWorkers = 1024;

struct ServerState {
  std::unique_ptr<InferenceClient> client;
  bool down = false;     // failed; polled with /health
  bool refused = false;  // failed its probe: never used again
  int64_t in_flight = 0;
  int64_t failures_in_a_row = 0;  // requests, across samples
};

}  // namespace bridge_internal

using bridge_internal::Group;
using bridge_internal::Sample;
using bridge_internal::ServerState;

class RolloutBridge::Impl {
 public:
  Impl(BridgeConfig config, std::vector<std::unique_ptr<InferenceClient>> clients,
       TokenDecoder decode, StageTiming* timing)
      : config_(std::move(config)), decode_(std::move(decode)), timing_(timing) {
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

  void StartGroup(proto::Prompt prompt, uint64_t delivery, int64_t max_new_tokens);
  void Work();
  void RunSample(Group* group, int index);
  absl::Status Generate(Group* group, Sample* sample);
  absl::StatusOr<std::string> GroupMessage(const Group& group, int64_t version, int64_t* staleness);
  int64_t Capacity() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const BridgeConfig config_;
  const TokenDecoder decode_;
  StageTiming* const timing_;  // may be null

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

}  // namespace moerl

#endif  // MOERL_ROLLOUT_BRIDGE_IMPL_H_
