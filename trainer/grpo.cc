#include "trainer/grpo.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace moerl {

absl::StatusOr<std::vector<float>> GroupAdvantages(absl::Span<const float> rewards,
                                                   int32_t group_size,
                                                   const AdvantageOptions& options) {
  if (group_size < 1 || rewards.size() % group_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GroupAdvantages: ", rewards.size(), " rewards do not form whole groups of ",
        group_size));
  }
  std::vector<float> advantages(rewards.size());
  for (size_t start = 0; start < rewards.size(); start += group_size) {
    double mean = 0.0;
    for (int32_t i = 0; i < group_size; ++i) mean += rewards[start + i];
    mean /= group_size;
    double var = 0.0;
    for (int32_t i = 0; i < group_size; ++i) {
      var += (rewards[start + i] - mean) * (rewards[start + i] - mean);
    }
    const double std = group_size > 1 ? std::sqrt(var / (group_size - 1)) : 0.0;
    // A group whose rewards are all equal carries no signal: its centred
    // rewards are exactly 0, and stay 0 even when std + eps is 0.
    const double scale =
        options.normalize_std && std + options.eps > 0.0 ? 1.0 / (std + options.eps) : 1.0;
    for (int32_t i = 0; i < group_size; ++i) {
      advantages[start + i] = static_cast<float>((rewards[start + i] - mean) * scale);
    }
  }
  return advantages;
}

}  // namespace moerl
