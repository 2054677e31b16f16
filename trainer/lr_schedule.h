// The learning-rate schedule of AReaL's FSDP engine (transformers'
// get_{constant,linear,cosine}_schedule_with_warmup, with min_lr_ratio):
// the multiplier of the peak lr for training step s (0-based), stepped once
// per training step (after its ppo_n_minibatches optimizer steps).
//
//   W = floor(warmup_steps_proportion * total_steps)
//   s < W:      s / max(1, W)
//   constant:   1
//   linear:     m + (1 - m) * max(0, (T - s) / max(1, T - W))
//   cosine:     m + (1 - m) * max(0, 0.5 * (1 + cos(pi * p))),  p = (s - W) / max(1, T - W)
//   (m = min_lr_ratio, T = total_steps)
//
//   LrSchedule schedule{"cosine", 0.001, 0.1, 290};
//   double lr = peak_lr * schedule.Multiplier(step);
//
// Pure; thread-safe.
#ifndef MOERL_TRAINER_LR_SCHEDULE_H_
#define MOERL_TRAINER_LR_SCHEDULE_H_

#include <cstdint>
#include <string>

namespace moerl {

struct LrSchedule {
  std::string type = "constant";  // constant, linear, cosine
  double warmup_steps_proportion = 0.0;
  double min_lr_ratio = 0.0;
  int64_t total_steps = 0;  // 0: unknown (constant only; no warmup)

  int64_t WarmupSteps() const;
  double Multiplier(int64_t step) const;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_LR_SCHEDULE_H_
