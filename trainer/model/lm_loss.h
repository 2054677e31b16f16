// Mean next-token cross-entropy through the LM head, fused and chunked: the
// fp32 logits of at most `chunk_rows` rows exist at a time, and the gradient
// is computed in the same pass as the loss (the loss is a scalar, so its
// backward only scales the stored gradients), instead of materialising the
// full [N, V] logits, their log-softmax, and the log-softmax's gradient.
//
//   z = (h W^T).float()              (logits in the model dtype, then fp32)
//   loss = mean_n( logsumexp(z_n) - z_n[y_n] )
//   dz = (softmax(z) - onehot(y)) / N;  dh = dz W;  dW = dz^T h
//
// Shape letters: n rows (token positions with a target), d hidden, v vocab.
//
//   at::Tensor loss = LinearCrossEntropyMean(hidden_nd, lm_head_vd, targets_n);
//   loss.backward();   // grads for hidden_nd and lm_head_vd
//
// Gradients are only computed when grad mode is on and an input requires
// grad. Memory: the saved gradients ([N, D] and [V, D], in the model dtype)
// replace the [N, V] fp32 logits autograd would keep; for bf16 inputs the
// forward also holds two [V, D] fp32 buffers while it runs. Thread-compatible; no state.
#ifndef MOERL_TRAINER_MODEL_LM_LOSS_H_
#define MOERL_TRAINER_MODEL_LM_LOSS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace moerl {

// hidden_nd: [N, D]; lm_head_vd: [V, D] (same dtype); targets_n: int64 [N].
// Returns a 0-dim fp32 tensor.
at::Tensor LinearCrossEntropyMean(const at::Tensor& hidden_nd, const at::Tensor& lm_head_vd,
                                  const at::Tensor& targets_n, int64_t chunk_rows = 1024);

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_LM_LOSS_H_
