// Static arithmetic of one training allocation on one model: parameter
// counts, per-GPU memory for parameters, gradients and (distributed)
// optimizer state, an activation estimate, per-step communication volume by
// kind, and every divisibility problem. Formulas: megatron-reference.md §6.2
// and §6.3; the activation and communication models are documented in
// docs/config.md ("alloc_plan").
//
//   ParameterCounts counts = CountParameters(model);
//   TrainingEstimate e = EstimateTraining(model, dims, Backend::kMegatron, options);
//   e.worst_stage.static_bytes();   // ~33.4 GiB for Qwen3-30B-A3B, attn d1p4t2c2 / ffn d1p4t1e4
//
// Pure functions; thread-safe.
#ifndef MOERL_TOOLS_ALLOC_PLAN_ESTIMATE_H_
#define MOERL_TOOLS_ALLOC_PLAN_ESTIMATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/alloc_mode/alloc_mode.h"
#include "trainer/model/config.h"

namespace moerl {

inline constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct ParameterCounts {
  int64_t attention_per_layer = 0;  // q, k, v, o projections (TP-split)
  int64_t norms_per_layer = 0;      // input + post-attention RMSNorm, q/k norms (replicated)
  int64_t router_per_layer = 0;     // MoE layers (replicated)
  int64_t expert = 0;               // one expert: gate, up, down = 3*H*F
  int64_t dense_mlp_per_layer = 0;  // non-MoE layers: 3*H*I
  int64_t embedding = 0;            // V*H
  int64_t lm_head = 0;              // V*H, 0 when tied
  int64_t final_norm = 0;
  int64_t total = 0;
  int64_t active = 0;               // per token: top-k experts only
  int64_t experts_total = 0;        // all experts of all layers
};

ParameterCounts CountParameters(const ModelConfig& model);

struct PlanOptions {
  int64_t micro_batch_tokens = 8192;  // per DP rank, before the CP split
  int64_t tokens_per_step = 8192;     // all DP ranks together
  bool grad_reduce_in_fp32 = true;    // actor.megatron.ddp.grad_reduce_in_fp32
  bool precision_aware_optimizer = false;
  // Bytes per element of the activations and weights that travel (bf16: 2;
  // a float32 run, e.g. the CPU benchmarks: 4). Gradients: grad_reduce_in_fp32.
  double comm_element_bytes = 2;
};

// One pipeline stage on one GPU; parameter counts are per GPU.
struct StageEstimate {
  int stage = 0;
  int64_t layers = 0;
  int64_t dense_params = 0;
  int64_t expert_params = 0;
  double param_bytes = 0;
  double grad_bytes = 0;
  double optimizer_bytes = 0;
  double activation_bytes = 0;
  double static_bytes() const { return param_bytes + grad_bytes + optimizer_bytes; }
  double total_bytes() const { return static_bytes() + activation_bytes; }
};

// Bytes one GPU sends per training step, by kind.
struct CommVolume {
  double tp = 0;  // sequence-parallel all-gather / reduce-scatter
  double cp = 0;  // KV exchange of ring attention
  double ep = 0;  // token dispatch / combine all-to-all
  double pp = 0;  // activations and gradients between stages
  double dp = 0;  // distributed optimizer reduce-scatter + all-gather
  double total() const { return tp + cp + ep + pp + dp; }
};

struct TrainingEstimate {
  ParallelDims dims;
  Backend backend = Backend::kMegatron;
  int64_t dense_shard_group = 1;   // S_d = DP*CP
  int64_t expert_shard_group = 1;  // S_e = EDP
  int64_t experts_per_rank = 0;
  int64_t micro_batches_per_step = 1;
  std::vector<StageEstimate> stages;
  StageEstimate worst_stage;  // the stage with the most memory
  CommVolume comm;
  std::vector<std::string> problems;  // divisibility and shape problems
};

TrainingEstimate EstimateTraining(const ModelConfig& model, const ParallelDims& dims,
                                  Backend backend, const PlanOptions& options);

}  // namespace moerl

#endif  // MOERL_TOOLS_ALLOC_PLAN_ESTIMATE_H_
