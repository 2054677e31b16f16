#include "rollout/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace moerl {

absl::StatusOr<Sampled> SampleToken(absl::Span<const float> logits_v,
                                    const SamplingParams& params, absl::BitGen& rng) {
  if (logits_v.empty()) return absl::InvalidArgumentError("SampleToken: empty logits");
  if (params.temperature < 0.0f || !std::isfinite(params.temperature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SampleToken: temperature must be >= 0, got ", params.temperature));
  }
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SampleToken: top_p must be in (0, 1], got ", params.top_p));
  }
  if (params.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("SampleToken: top_k must be >= 0, got ", params.top_k));
  }
  const int32_t vocab = static_cast<int32_t>(logits_v.size());
  const float temperature = params.temperature == 0.0f ? 1.0f : params.temperature;
  // Log-softmax of logits / temperature, in double for a stable sum.
  const float max_logit = *std::max_element(logits_v.begin(), logits_v.end());
  double sum = 0.0;
  for (float logit : logits_v) sum += std::exp((logit - max_logit) / temperature);
  const double log_z = std::log(sum);
  auto logprob = [&](int32_t id) {
    return static_cast<float>((logits_v[id] - max_logit) / temperature - log_z);
  };

  std::vector<int32_t> order_v(vocab);
  std::iota(order_v.begin(), order_v.end(), 0);
  // Highest logit first; ties go to the lower id so greedy is deterministic.
  std::stable_sort(order_v.begin(), order_v.end(),
                   [&](int32_t a, int32_t b) { return logits_v[a] > logits_v[b]; });
  if (params.temperature == 0.0f) return Sampled{order_v[0], logprob(order_v[0])};

  int32_t kept = params.top_k > 0 ? std::min(params.top_k, vocab) : vocab;
  double mass = 0.0;
  for (int32_t i = 0; i < kept; ++i) {
    mass += std::exp(logprob(order_v[i]));
    if (mass >= params.top_p) {
      kept = i + 1;
      break;
    }
  }
  double total = 0.0;
  for (int32_t i = 0; i < kept; ++i) total += std::exp(logprob(order_v[i]));
  double u = absl::Uniform<double>(rng, 0.0, total);
  for (int32_t i = 0; i < kept; ++i) {
    u -= std::exp(logprob(order_v[i]));
    if (u <= 0.0) return Sampled{order_v[i], logprob(order_v[i])};
  }
  return Sampled{order_v[kept - 1], logprob(order_v[kept - 1])};
}

}  // namespace moerl
