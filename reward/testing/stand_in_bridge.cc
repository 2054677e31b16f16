#include "reward/testing/stand_in_bridge.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/proto/formats.h"
#include "common/proto/prompt.pb.h"
#include "common/proto/trajectory.pb.h"
#include "common/status.h"
#include "common/transport/shm_ring.h"
#include "rollout/group_id.h"

namespace moerl {

proto::Trajectory StandInTrajectory(const proto::Prompt& prompt, uint32_t sample_index,
                                    std::string output_text) {
  proto::Trajectory t;
  t.set_format_version(kTrajectoryFormatVersion);
  t.set_prompt_id(prompt.id());
  t.set_group_id(GroupId(prompt));
  t.set_sample_index(sample_index);
  t.mutable_prompt_tokens()->CopyFrom(prompt.tokens());
  t.set_gold_answer(prompt.gold_answer());
  t.set_output_text(std::move(output_text));
  return t;
}

absl::Status RunStandInBridge(const std::string& prompts_ring,
                              const std::string& trajectories_ring, uint32_t n_samples,
                              StandInBridgeReport* report) {
  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<ShmRing> in,
                         ShmRing::Open(prompts_ring, RingRole::kConsumer));
  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<ShmRing> out,
                         ShmRing::Open(trajectories_ring, RingRole::kProducer));
  while (true) {
    absl::StatusOr<RingMessage> message = in->Pop(absl::Seconds(60));
    if (absl::IsOutOfRange(message.status())) break;
    MOERL_RETURN_IF_ERROR(message.status());
    proto::Prompt prompt;
    if (!prompt.ParseFromString(message->payload)) {
      return absl::DataLossError(absl::StrCat("prompt ", report->prompts, " does not parse"));
    }
    MOERL_RETURN_IF_ERROR(in->Ack(message->ticket));
    ++report->prompts;
    for (uint32_t i = 0; i < n_samples; ++i) {
      const proto::Trajectory t = StandInTrajectory(
          prompt, i,
          i == 0 ? absl::StrCat("So \\boxed{", prompt.gold_answer(), "}.")
                 : "The answer is 123456.");
      MOERL_RETURN_IF_ERROR(out->Push(t.SerializeAsString(), absl::Seconds(60)));
      ++report->trajectories;
    }
  }
  return out->CloseProducer();
}

}  // namespace moerl
