#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace moerl {

int64_t LrSchedule::WarmupSteps() const {
  return static_cast<int64_t>(std::floor(warmup_steps_proportion * static_cast<double>(total_steps)));
}

double LrSchedule::Multiplier(int64_t step) const {
  const int64_t warmup = WarmupSteps();
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  if (type == "constant") return 1.0;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup));
  double decay = 0;
  if (type == "linear") {
    decay = std::max(0.0, static_cast<double>(total_steps - step) / span);
  } else {  // cosine
    const double progress = static_cast<double>(step - warmup) / span;
    decay = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  }
  return min_lr_ratio + (1.0 - min_lr_ratio) * decay;
}

}  // namespace moerl
