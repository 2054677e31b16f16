// The policy's forward over one packed micro-batch: per-token log-probs (and
// entropies) of every completion token at a temperature, plus the MoE
// routers' losses. The one place the trainer turns sequences into model
// input, shared by the proximal recompute (no grad), the GRPO loss, SFT and
// the probe.
//
//   PolicyOutput out = PolicyForward(model, seqs, {0, 3, 4}, {.temperature = 1.0});
//   out.logp_n;    // [N] fp32, N = sum of the three completions' lengths, in order
//
// Completion token j of a sequence with prompt length P sits at position
// P + j and is predicted by the hidden state at P + j - 1.
// Under tensor parallelism (Qwen3Model::SetSequenceShard, SetTokenScorer)
// the packed micro-batch is padded to a multiple of tp and every rank of the
// tp group returns the same logp_n and entropy_n, computed vocabulary-
// parallel (the [N, V] logits never exist whole); router replay is refused.
// Under context parallelism (Qwen3Model::SetContextSplit) the model splits
// the packed micro-batch itself and every rank of the cp group returns the
// same, whole logp_n and entropy_n (each rank's gradient is that of its
// rows); topk_ids_tk are the rows of the rank's part.
// Shape letters: t packed tokens, n completion tokens, d hidden.
// Thread-compatible (one forward per model at a time).
#ifndef MOERL_TRAINER_POLICY_FORWARD_H_
#define MOERL_TRAINER_POLICY_FORWARD_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "trainer/micro_batches.h"
#include "trainer/model/model.h"
#include "trainer/train_batch.h"

namespace moerl {

struct PolicyForwardOptions {
  double temperature = 1.0;
  bool with_entropy = false;
  // Router replay: force each sequence's routed_experts (where present) on
  // its completion tokens.
  bool replay_routes = false;
};

struct PolicyOutput {
  at::Tensor logp_n;     // fp32 [N]
  at::Tensor entropy_n;  // fp32 [N], or undefined
  at::Tensor aux_loss;   // fp32 scalar, or undefined (no MoE layers)
  at::Tensor z_loss;     // fp32 scalar, or undefined
  std::vector<int64_t> output_lens;  // per sequence of the micro-batch
  int64_t num_tokens = 0;            // packed T
  // Per MoE layer, the routes used; under sequence parallelism this rank's
  // token rows only (Qwen3Model::SetSequenceShard).
  std::vector<at::Tensor> topk_ids_tk;
  // Per MoE layer, the routers' own top-k (= topk_ids_tk without replay),
  // over the same rows.
  std::vector<at::Tensor> router_topk_ids_tk;
};

// InvalidArgument (naming the sequence) unless every
// sequence's routed_experts is empty or matches the model (layers = its MoE
// layers, top_k = num_experts_per_tok, completion tokens x layers x top_k
// ids, each < num_experts).
absl::Status ValidateRoutes(const ModelConfig& config, const std::vector<TrainSequence>& seqs);

PolicyOutput PolicyForward(Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                           const IndexList& indices, const PolicyForwardOptions& options);

// PolicyForward in two halves, for a pipeline whose stages run the model in
// pieces: the packed input (and what scoring needs), then the log-probs from
// the last stage's hidden_td.
struct PolicyBatch {
  ModelInput input;
  at::Tensor rows_n;     // int64 [N]: packed row predicting each completion token
  at::Tensor targets_n;  // int64 [N]
  std::vector<int64_t> output_lens;
  int64_t num_tokens = 0;  // packed T before the sequence-parallel padding
};
PolicyBatch PackPolicyBatch(const Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                            const IndexList& indices, const PolicyForwardOptions& options);
// logp_n, entropy_n, output_lens and num_tokens (not the router fields).
PolicyOutput ScorePolicyBatch(Qwen3Model& model, const PolicyBatch& batch, const at::Tensor& hidden_td,
                              const PolicyForwardOptions& options);

// No-grad forwards of several micro-batches, in order (Prepare's proximal
// log-probs): PolicyForward on each by default; under pipeline parallelism a
// forward-only pass through the stages (trainer/pipeline_train.h).
using BatchPolicyForward = std::function<std::vector<PolicyOutput>(
    Qwen3Model& model, const std::vector<TrainSequence>& seqs, const std::vector<IndexList>& micros,
    const PolicyForwardOptions& options)>;

}  // namespace moerl

#endif  // MOERL_TRAINER_POLICY_FORWARD_H_
