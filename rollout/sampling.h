// Sampling one token from a row of logits: greedy, temperature, top-k, top-p.
//
//   absl::BitGen rng(std::seed_seq{seed});
//   Sampled s = SampleToken(logits_v, {.temperature = 0.7f, .top_p = 0.9f}, rng);
//   s.token, s.logprob   // logprob under the temperature-scaled, unfiltered
//                        // distribution: what the trainer recomputes
//
// Thread-compatible: the generator is the caller's.
#ifndef MOERL_ROLLOUT_SAMPLING_H_
#define MOERL_ROLLOUT_SAMPLING_H_

#include <cstdint>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moerl {

struct SamplingParams {
  float temperature = 1.0f;  // 0 means greedy
  int32_t top_k = 0;         // 0 keeps every token
  float top_p = 1.0f;        // nucleus mass kept, in (0, 1]
};

struct Sampled {
  int32_t token = -1;
  float logprob = 0.0f;
};

// InvalidArgument for empty logits or parameters out of range.
absl::StatusOr<Sampled> SampleToken(absl::Span<const float> logits_v,
                                    const SamplingParams& params, absl::BitGen& rng);

}  // namespace moerl

#endif  // MOERL_ROLLOUT_SAMPLING_H_
