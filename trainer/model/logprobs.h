// Per-token log-probabilities and entropies of target tokens under a
// temperature, computed in chunks of rows so that the fp32 logits never exist
// for more than `chunk_rows` tokens at once (151,936 x 4 bytes per row for
// Qwen3): forward keeps only the hidden states, backward recomputes each
// chunk's logits (a custom autograd function).
//
//   z = (h W^T).float() / temperature        (logits in the model dtype, then fp32)
//   logp[t]    = z[t, y_t] - logsumexp(z[t])
//   entropy[t] = logsumexp(z[t]) - sum_v softmax(z[t])_v z[t, v]
//
// This is THE formula shared by the trainer (recomputed log-probs) and the
// generation engine (behaviour log-probs), so both sides agree by construction.
// Gradients: dz = g_lp (onehot(y) - p) - g_H p (log p + H), then / temperature.
//
//   TokenLogProbs r = ComputeTokenLogProbs(hidden_nd, lm_head_vd, targets_n, 1.0);
//   r.logprobs_n.sum().backward();
//
// Also: ScoreSequences, the training forward's scoring of whole sequences
// (prompt + completion), used by the trainer and by the engine's
// deterministic mode. Thread-compatible.
#ifndef MOERL_TRAINER_MODEL_LOGPROBS_H_
#define MOERL_TRAINER_MODEL_LOGPROBS_H_

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/model/token_logprobs.h"

namespace moerl {

class Qwen3Model;

// hidden_nd [N, D] and lm_head_vd [V, D] in the model dtype; targets_n int64.
TokenLogProbs ComputeTokenLogProbs(const at::Tensor& hidden_nd, const at::Tensor& lm_head_vd,
                                   const at::Tensor& targets_n, double temperature,
                                   bool with_entropy = true, int64_t chunk_rows = 256);

// The plain (full-logits) formula, the reference the chunked one is tested against.
TokenLogProbs ReferenceTokenLogProbs(const at::Tensor& hidden_nd, const at::Tensor& lm_head_vd,
                                     const at::Tensor& targets_n, double temperature);

// Log-probs of each sequence's tokens after position prompt_lens[i] - 1, i.e.
// of its completion, from one packed training forward over all sequences.
// Returns one fp32 vector per sequence (length seq.size() - prompt_len), or
// InvalidArgument naming the sequence and position of an out-of-vocabulary id
// (or a prompt_lens that does not match the sequences).
absl::StatusOr<std::vector<std::vector<float>>> ScoreSequences(
    Qwen3Model& model, const std::vector<std::vector<int64_t>>& sequences,
    const std::vector<int64_t>& prompt_lens, double temperature);

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_LOGPROBS_H_
