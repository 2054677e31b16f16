// GRPO's group-normalised advantages.
//
// For a group of n completions of one prompt with rewards r_1..r_n:
//   A_i = (r_i - mean(r)) / (std(r) + eps)     (std: unbiased, as AReaL)
// or only r_i - mean(r) without std normalisation.
//
//   std::vector<float> adv = GroupAdvantages(rewards, /*group_size=*/4, opts);
//
// Thread-safe; no state.
#ifndef MOERL_TRAINER_GRPO_H_
#define MOERL_TRAINER_GRPO_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moerl {

struct AdvantageOptions {
  bool normalize_std = true;
  float eps = 1e-5f;
};

// `rewards` holds whole groups, contiguous. InvalidArgument if its size is not
// a multiple of group_size or group_size < 1.
absl::StatusOr<std::vector<float>> GroupAdvantages(absl::Span<const float> rewards,
                                                   int32_t group_size,
                                                   const AdvantageOptions& options);

}  // namespace moerl

#endif  // MOERL_TRAINER_GRPO_H_
