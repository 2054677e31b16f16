// GroupId: the id shared by the gconfig.n_samples trajectories of one
// prompt, "<prompt id>@<epoch>" (unique per run: a prompt id appears once per
// epoch). The rollout bridge stamps it; stand-ins and tests use the same rule.
//
//   trajectory.set_group_id(GroupId(prompt));   // "gsm8k/train/17@0"
//
// Pure function; thread-safe.
#ifndef MOERL_ROLLOUT_GROUP_ID_H_
#define MOERL_ROLLOUT_GROUP_ID_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "common/proto/prompt.pb.h"

namespace moerl {

inline std::string GroupId(const proto::Prompt& prompt) {
  return absl::StrCat(prompt.id(), "@", prompt.epoch());
}

}  // namespace moerl

#endif  // MOERL_ROLLOUT_GROUP_ID_H_
