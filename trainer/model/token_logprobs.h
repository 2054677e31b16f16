// What scoring tokens returns (logprobs.h computes it; model.h's token
// scorer seam returns it too).
#ifndef MOERL_TRAINER_MODEL_TOKEN_LOGPROBS_H_
#define MOERL_TRAINER_MODEL_TOKEN_LOGPROBS_H_

#include <ATen/core/Tensor.h>

namespace moerl {

struct TokenLogProbs {
  at::Tensor logprobs_n;  // fp32 [N]
  at::Tensor entropy_n;   // fp32 [N]; undefined unless with_entropy
};

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_TOKEN_LOGPROBS_H_
