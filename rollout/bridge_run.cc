#include "rollout/bridge_run.h"

#include <memory>
#include <utility>

#include "common/config/cli.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"
#include "common/stage_timing.h"
#include "common/transport/shm_ring.h"
#include "common/transport/timed_ring.h"
#include "dataset/feeder_run.h"
#include "rollout/sglang_http_client.h"
#include "rollout/vllm_http_client.h"

namespace moerl {

absl::StatusOr<BridgeSettings> LoadBridgeSettings(const std::vector<std::string>& args) {
  MOERL_ASSIGN_OR_RETURN(CommandLine cli, ParseCommandLine(args, {}));
  MOERL_ASSIGN_OR_RETURN(ConfigTree tree, LoadConfig(cli));
  BridgeSettings settings;
  MOERL_RETURN_IF_ERROR(settings.Load(tree));
  return settings;
}

absl::Status RunBridge(const BridgeSettings& settings, const std::string& argv0,
                       const std::function<bool()>& should_stop, BridgeReport* report) {
  MOERL_RETURN_IF_ERROR(settings.Validate());
  // The same tokenizer the feeder encodes prompts with.
  MOERL_ASSIGN_OR_RETURN(Tokenizer tokenizer, LoadPromptTokenizer(settings.TokenizerPath(), argv0));
  const BridgeConfig config = settings.ToBridgeConfig(tokenizer.stop_ids());
  // Where the time goes, in the log (docs/pipeline.md, "Stage timing").
  StageTiming timing("bridge");
  StageTimingReporter reporter(&timing, kStageTimingPeriod);
  std::vector<std::unique_ptr<InferenceClient>> servers;
  HttpClientOptions http;
  http.api_key = settings.api_key;
  http.timing = &timing;
  for (const std::string& address : settings.server_addrs) {
    MOERL_ASSIGN_OR_RETURN(std::unique_ptr<InferenceClient> client,
                           settings.server_api == "vllm" ? MakeVllmHttpClient(address, http)
                                                         : MakeSglangHttpClient(address, http));
    servers.push_back(std::move(client));
  }
  MOERL_ASSIGN_OR_RETURN(std::string prompt_name, settings.PromptRing());
  MOERL_ASSIGN_OR_RETURN(std::string trajectory_name, settings.TrajectoryRing());
  absl::StatusOr<std::unique_ptr<ShmRing>> prompts =
      ShmRing::Open(prompt_name, RingRole::kConsumer);
  if (!prompts.ok()) return Annotate(prompts.status(), "rollout.prompt_ring=" + prompt_name);
  absl::StatusOr<std::unique_ptr<ShmRing>> trajectories =
      ShmRing::Open(trajectory_name, RingRole::kProducer);
  if (!trajectories.ok()) {
    return Annotate(trajectories.status(), "rollout.trajectory_ring=" + trajectory_name);
  }
  MOERL_LOG(INFO) << "bridge: " << servers.size() << " server(s), prompts from " << prompt_name
                  << " ("
                  << ((*prompts)->delivery_mode() == DeliveryMode::kAcknowledged ? "acknowledged"
                                                                                 : "plain")
                  << "), groups to " << trajectory_name << ", weights in " << config.weights_dir;
  TimedRing timed_prompts(prompts->get(), &timing);
  TimedRing timed_trajectories(trajectories->get(), &timing);
  RolloutBridge bridge(
      config, std::move(servers),
      [tokenizer](absl::Span<const int32_t> ids) {
        // AReaL decodes without skipping special tokens; like its tokenizer,
        // ids that name no token decode to nothing.
        return tokenizer.Decode(ids, {.skip_unknown_ids = true});
      },
      &timing);
  return bridge.Run(timed_prompts, timed_trajectories, report, should_stop);
}

}  // namespace moerl
