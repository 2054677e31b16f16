// RolloutBridge: prompts from a ring -> gconfig.n_samples completions each
// from inference servers -> whole groups into a ring, with AReaL's
// staleness control and weight updates from disk (docs/bridge.md).
//
//   std::vector<std::unique_ptr<InferenceClient>> servers = ...;
//   RolloutBridge bridge(config, std::move(servers), decode);
//   BridgeReport report;
//   MOERL_RETURN_IF_ERROR(bridge.Run(*prompt_ring, *trajectory_ring, &report, should_stop));
//
// Admission (AReaL's StalenessManager, in prompt groups): a prompt is taken
// only while
//   min(max_concurrent_rollouts - running,
//       (max_head_offpolicyness + version + 1) * consumer_batch_size - (accepted + running)) > 0
// and no weight update is in progress; `version` is the one the servers
// last loaded (from weights/LATEST), `accepted` counts groups pushed and
// starts at version * consumer_batch_size (AReaL's rule after a restart).
//
// Generation: each sample is its own request (AReaL sends n_samples=1
// requests), to the least-loaded usable server, staying on the server of its
// previous segment. An answer that ends with finish "abort" (a weight update
// paused the servers) is resubmitted, once the update is done, with the
// tokens so far appended to the prompt and the budget reduced (partial
// rollout): log-probs, per-token versions and routes are kept, so one
// trajectory can mix versions. Each token's version is the server's
// weight_version of the answer that produced it (the bridge's version when
// the server reports none). Errors and timeouts are retried with exponential
// backoff, rollout.request_retries times on one server; then that server is
// marked down (logged with its address) and the sample continues elsewhere
// from the tokens so far. A down server is polled with /health and, when it
// answers, loaded with the current weights before it is used again. A 4xx
// answer (the request itself is wrong) ends the run with an error.
//
// Weight updates: a watcher polls weights/LATEST; on a newer version N it
// pauses dispatch, POSTs pause_generation to every usable server, waits
// pause_grace_period, loads weights/v<N> (pinned, common/weights_dir.h) on
// every server in parallel, continues generation on each (a paused server
// would hold the probe), checks each with v<N>/probe.json while the bridge
// still sends nothing else (a server whose log-probs differ by more than
// probe_tolerance is refused for the rest of the run, naming its address),
// then raises the version and resumes dispatch.
//
// Delivery: each finished group is pushed as one TrajectoryBatch holding the
// whole group (the scorer's MessageKind::kGroup), and only then is its prompt
// acknowledged, so in acknowledged mode a killed bridge loses no group (one
// pushed but not yet acknowledged when the bridge died is produced twice).
// At end of stream of prompts the in-flight groups are finished, the producer
// is closed and OK returned. should_stop: stop taking prompts, abandon the
// groups in flight (their prompts are not acknowledged: redelivered to the
// next bridge), close the producer, return OK.
//
// Threading: Run blocks its caller's thread, which alone uses the rings; the
// bridge runs one thread per concurrent request and a watcher thread.
#ifndef MOERL_ROLLOUT_BRIDGE_H_
#define MOERL_ROLLOUT_BRIDGE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/proto/prompt.pb.h"
#include "common/proto/trajectory.pb.h"
#include "common/stage_timing.h"
#include "common/transport/message_ring.h"
#include "rollout/inference_client.h"

namespace moerl {

struct BridgeConfig {
  uint32_t n_samples = 1;
  // max_new_tokens here is gconfig.max_new_tokens; per prompt the bridge
  // sends min(max_tokens - prompt length, max_new_tokens).
  SamplingParams sampling;
  int64_t max_tokens = 32768;
  bool return_routed_experts = false;

  int64_t max_concurrent_rollouts = 1;  // groups
  int64_t consumer_batch_size = 1;      // groups
  int64_t max_head_offpolicyness = 0;

  absl::Duration request_timeout = absl::Seconds(3600);
  int64_t request_retries = 3;
  absl::Duration setup_timeout = absl::Seconds(300);
  absl::Duration pause_grace_period = absl::ZeroDuration();
  absl::Duration retry_backoff = absl::Milliseconds(200);  // doubled per retry, at most 10 s
  absl::Duration control_timeout = absl::Seconds(600);     // pause/update/continue/probe calls
  absl::Duration poll_interval = absl::Milliseconds(100);  // weights/LATEST
  absl::Duration revive_interval = absl::Seconds(1);       // /health of down servers

  std::string weights_dir;
  double probe_tolerance = 0.05;

  // Set (actor.megatron.use_deterministic_algorithms): every request carries
  // sampling_seed = hash(this, group id, sample index, tokens so far), so a
  // rerun draws the same tokens whatever order requests reach the servers in.
  // Unset: no sampling_seed (servers derive seeds from arrival order).
  std::optional<uint64_t> sampling_seed_base;

  absl::Status Validate() const;
};

// The sampling_seed of one request (BridgeConfig::sampling_seed_base): a
// non-negative int64 that depends only on its arguments.
int64_t RequestSamplingSeed(uint64_t base, const std::string& group_id, int64_t sample_index,
                            int64_t tokens_so_far);

struct BridgeReport {
  int64_t prompts_taken = 0;
  int64_t prompts_redelivered = 0;  // delivery_count > 1
  int64_t prompts_dropped = 0;      // unparsable or too long: logged, acknowledged
  int64_t groups_pushed = 0;
  int64_t trajectories_pushed = 0;
  int64_t requests = 0;
  int64_t resubmissions = 0;  // segments after an abort
  int64_t retries = 0;        // failed requests retried
  int64_t weight_updates = 0;
  int64_t version = -1;                      // the last version loaded
  int64_t max_push_staleness = 0;            // version at push - oldest token version
  std::vector<std::string> servers_down;     // "address: why", each time one went down
  std::vector<std::string> servers_refused;  // "address: why"
};

// Output token ids -> text for Trajectory.output_text (the scorer reads it).
using TokenDecoder = std::function<absl::StatusOr<std::string>(absl::Span<const int32_t>)>;

class RolloutBridge {
 public:
  // `timing` (optional, borrowed): the ring loop's waits for generations
  // and its protobuf work (docs/pipeline.md, "Stage timing").
  RolloutBridge(BridgeConfig config, std::vector<std::unique_ptr<InferenceClient>> servers,
                TokenDecoder decode, StageTiming* timing = nullptr);
  ~RolloutBridge();
  RolloutBridge(const RolloutBridge&) = delete;
  RolloutBridge& operator=(const RolloutBridge&) = delete;

  absl::Status Run(MessageRing& prompts, MessageRing& trajectories, BridgeReport* report,
                   const std::function<bool()>& should_stop = nullptr);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moerl

#endif  // MOERL_ROLLOUT_BRIDGE_H_
