// A stand-in for the rollout bridge, for tests of the feeder -> ring ->
// scorer path: every Prompt taken from one ring becomes `n_samples`
// Trajectory messages pushed into another, sample 0 answering with the gold
// answer in a box, the others with a wrong number.
//
//   StandInBridgeReport report;
//   MOERL_RETURN_IF_ERROR(RunStandInBridge("e.t.prompts", "e.t.trajectories", 4, &report));
//
// Group ids follow the bridge's rule (rollout/group_id.h). Returns at the prompt ring's end of
// stream, after closing its producer on the trajectory ring. Thread: the
// caller's; opens its own ring participants.
#ifndef MOERL_REWARD_TESTING_STAND_IN_BRIDGE_H_
#define MOERL_REWARD_TESTING_STAND_IN_BRIDGE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/proto/prompt.pb.h"
#include "common/proto/trajectory.pb.h"

namespace moerl {

// Sample `sample_index` of `prompt`'s group, answering with `output_text`:
// group id GroupId(prompt), prompt tokens and gold answer copied.
proto::Trajectory StandInTrajectory(const proto::Prompt& prompt, uint32_t sample_index,
                                    std::string output_text);

struct StandInBridgeReport {
  int64_t prompts = 0;
  int64_t trajectories = 0;
};

absl::Status RunStandInBridge(const std::string& prompts_ring,
                              const std::string& trajectories_ring, uint32_t n_samples,
                              StandInBridgeReport* report);

}  // namespace moerl

#endif  // MOERL_REWARD_TESTING_STAND_IN_BRIDGE_H_
