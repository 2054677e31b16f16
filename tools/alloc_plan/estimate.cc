#include "tools/alloc_plan/estimate.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace moerl {

ParameterCounts CountParameters(const ModelConfig& s) {
  ParameterCounts c;
  const int64_t h = s.hidden_size;
  const int64_t q_width = s.num_attention_heads * s.head_dim;
  const int64_t kv_width = s.num_key_value_heads * s.head_dim;
  c.attention_per_layer = h * q_width + 2 * h * kv_width + q_width * h;
  c.norms_per_layer = 2 * h + 2 * s.head_dim;
  c.router_per_layer = s.num_experts > 0 ? h * s.num_experts : 0;
  c.expert = 3 * h * s.moe_intermediate_size;
  c.dense_mlp_per_layer = 3 * h * s.intermediate_size;
  c.embedding = s.vocab_size * h;
  c.lm_head = s.tie_word_embeddings ? 0 : s.vocab_size * h;
  c.final_norm = h;
  const int64_t moe_layers = s.NumMoeLayers();
  const int64_t dense_layers = s.num_hidden_layers - moe_layers;
  const int64_t shared = s.num_hidden_layers * (c.attention_per_layer + c.norms_per_layer) +
                         dense_layers * c.dense_mlp_per_layer +
                         moe_layers * c.router_per_layer + c.embedding + c.lm_head + c.final_norm;
  c.experts_total = moe_layers * s.num_experts * c.expert;
  c.total = shared + c.experts_total;
  c.active = shared + moe_layers * s.num_experts_per_tok * c.expert;
  return c;
}

namespace {

// Layers of each stage: an even split, the first stages taking the remainder.
std::vector<int64_t> LayersPerStage(int64_t layers, int pp) {
  std::vector<int64_t> out(pp, layers / pp);
  for (int s = 0; s < layers % pp; ++s) ++out[s];
  return out;
}

void CheckDivisible(std::vector<std::string>* problems, int64_t value, const char* what,
                    int64_t by, const char* dim) {
  if (by > 1 && value % by != 0) {
    problems->push_back(absl::StrCat(what, " (", value, ") is not divisible by ", dim, " (", by, ")"));
  }
}

}  // namespace

TrainingEstimate EstimateTraining(const ModelConfig& s, const ParallelDims& d, Backend backend,
                                  const PlanOptions& o) {
  TrainingEstimate e;
  e.dims = d;
  e.backend = backend;
  const ParameterCounts c = CountParameters(s);
  const bool fsdp = backend == Backend::kFsdp;

  // Problems first: they explain odd numbers below.
  CheckDivisible(&e.problems, s.num_attention_heads, "attention heads", d.tp, "tp");
  CheckDivisible(&e.problems, s.num_key_value_heads, "KV heads", d.tp, "tp");
  if (fsdp) CheckDivisible(&e.problems, s.num_attention_heads, "attention heads", d.cp, "Ulysses cp");
  CheckDivisible(&e.problems, s.num_hidden_layers, "layers", d.pp, "pp");
  if (s.num_experts > 0) {
    CheckDivisible(&e.problems, s.num_experts, "experts", d.ep, "ep");
    CheckDivisible(&e.problems, s.moe_intermediate_size, "moe_intermediate_size", d.etp, "etp");
  } else if (d.ep > 1) {
    e.problems.push_back(absl::StrCat("ep=", d.ep, " but the model has no experts"));
  }
  if (d.pp > s.num_hidden_layers) {
    e.problems.push_back(absl::StrCat("pp (", d.pp, ") exceeds the number of layers (",
                                      s.num_hidden_layers, "): some stages would be empty"));
  }

  e.dense_shard_group = static_cast<int64_t>(d.dp) * d.cp;
  e.expert_shard_group = d.ExpertDataParallel();
  e.experts_per_rank = s.num_experts > 0 ? s.num_experts / d.ep : 0;
  const int64_t dp_tokens = std::max<int64_t>(1, static_cast<int64_t>(d.dp) * o.micro_batch_tokens);
  e.micro_batches_per_step = std::max<int64_t>(1, (o.tokens_per_step + dp_tokens - 1) / dp_tokens);

  // Bytes per parameter: bf16 weights, main gradients, optimizer state
  // (fp32 master + Adam m, v) sharded over the gradient-reduce group.
  const double grad_bytes = o.grad_reduce_in_fp32 ? 4 : 2;
  const double optimizer_bytes =
      (o.grad_reduce_in_fp32 ? 12 : 16) - (o.precision_aware_optimizer ? 4 : 0);
  const double s_dense = static_cast<double>(e.dense_shard_group);
  const double s_expert = static_cast<double>(e.expert_shard_group);

  // Activations per layer and token (bf16, no recomputation); tokens are split
  // by CP, and by TP under sequence parallelism.
  const double h = static_cast<double>(s.hidden_size);
  const double q_width = static_cast<double>(s.num_attention_heads * s.head_dim);
  const double kv_width = static_cast<double>(s.num_key_value_heads * s.head_dim);
  const double local_tokens = static_cast<double>(o.micro_batch_tokens) / d.cp / d.tp;
  const double attn_act = 2.0 * (2 * h + q_width + 2 * kv_width + q_width);
  const double moe_act =
      4.0 * s.num_experts +
      s.num_experts_per_tok * (2.0 * h + 6.0 * s.moe_intermediate_size / d.etp + 2.0 * h);
  const double dense_mlp_act = 2.0 * (h + 3.0 * s.intermediate_size);

  const std::vector<int64_t> layers = LayersPerStage(s.num_hidden_layers, d.pp);
  int64_t first_layer = 0;
  for (int stage = 0; stage < d.pp; ++stage) {
    StageEstimate st;
    st.stage = stage;
    st.layers = layers[stage];
    double dense = 0, expert = 0, act_per_token = 0;
    for (int64_t l = first_layer; l < first_layer + layers[stage]; ++l) {
      dense += static_cast<double>(c.attention_per_layer) / d.tp + c.norms_per_layer;
      act_per_token += attn_act;
      if (s.IsMoeLayer(l)) {
        dense += c.router_per_layer;
        expert += static_cast<double>(s.num_experts) * c.expert / (d.ep * d.etp);
        act_per_token += moe_act;
      } else {
        dense += static_cast<double>(c.dense_mlp_per_layer) / d.tp;
        act_per_token += dense_mlp_act;
      }
    }
    first_layer += layers[stage];
    if (stage == 0) dense += static_cast<double>(c.embedding) / d.tp;
    if (stage == d.pp - 1) {
      dense += static_cast<double>(c.lm_head) / d.tp + c.final_norm;
      if (s.tie_word_embeddings && d.pp > 1) dense += static_cast<double>(c.embedding) / d.tp;
    }
    st.dense_params = static_cast<int64_t>(dense);
    st.expert_params = static_cast<int64_t>(expert);
    if (fsdp) {
      // FSDP shards weights, gradients and optimizer state over dp*cp.
      st.param_bytes = 2.0 * (dense + expert) / s_dense;
      st.grad_bytes = grad_bytes * (dense + expert) / s_dense;
      st.optimizer_bytes = optimizer_bytes * (dense + expert) / s_dense;
    } else {
      st.param_bytes = 2.0 * (dense + expert);
      st.grad_bytes = grad_bytes * (dense + expert);
      st.optimizer_bytes = optimizer_bytes * (dense / s_dense + expert / s_expert);
    }
    // 1F1B: stage s keeps up to pp - s micro-batches in flight.
    const double in_flight =
        static_cast<double>(std::min<int64_t>(d.pp - stage, e.micro_batches_per_step));
    st.activation_bytes = act_per_token * local_tokens * in_flight;
    if (stage == d.pp - 1) {
      // fp32 logits of the vocab-parallel cross entropy.
      st.activation_bytes +=
          4.0 * static_cast<double>(o.micro_batch_tokens) / d.cp * s.vocab_size / d.tp;
    }
    e.stages.push_back(st);
  }
  e.worst_stage = *std::max_element(
      e.stages.begin(), e.stages.end(),
      [](const StageEstimate& a, const StageEstimate& b) { return a.total_bytes() < b.total_bytes(); });

  // Communication of the busiest stage, per GPU and step.
  const double n_mb = static_cast<double>(e.micro_batches_per_step);
  const double stage_layers = static_cast<double>(layers[0]);
  const double moe_fraction =
      s.num_hidden_layers > 0 ? static_cast<double>(s.NumMoeLayers()) / s.num_hidden_layers : 0;
  const double cp_tokens = static_cast<double>(o.micro_batch_tokens) / d.cp;
  const double a = o.comm_element_bytes;  // activations and weights on the wire
  if (d.tp > 1) {
    // Sequence parallel: an all-gather before and a reduce-scatter after each
    // tensor-parallel block, both again in backward (4 per block): attention
    // in every layer, the MLP of a dense layer, the experts when etp > 1
    // (gathered over etp), and the embedding (reduce-scatter) and LM head
    // (all-gather) on the pipeline ends (2 each).
    double dense_layers = 0, moe_layers = 0;
    for (int64_t l = 0; l < layers[0]; ++l) (s.IsMoeLayer(l) ? moe_layers : dense_layers) += 1;
    const double blocks =
        stage_layers + dense_layers + (d.etp > 1 ? moe_layers : 0.0) + (d.pp == 1 ? 1.0 : 0.5);
    e.comm.tp = n_mb * blocks * 4.0 * (d.tp - 1.0) / d.tp * cp_tokens * h * a;
  }
  // Context parallel as Megatron's default cp_comm_type=p2p: K and V pass
  // the ring in forward, K, V and their gradients in backward (3 passes).
  // moerl's trainer all-gathers K and V instead (2 passes).
  if (d.cp > 1) {
    e.comm.cp = n_mb * stage_layers * 3.0 * (d.cp - 1.0) * cp_tokens * 2.0 * kv_width * a;
  }
  if (d.ep > 1 && s.num_experts > 0) {
    e.comm.ep = n_mb * stage_layers * moe_fraction * 4.0 * local_tokens * s.num_experts_per_tok * h *
                a * (d.ep - 1.0) / d.ep;
  }
  // Point-to-point: each micro-batch's activation forward and its gradient
  // back; an inner stage sends both, with pp = 2 each stage sends one.
  if (d.pp > 1) e.comm.pp = n_mb * (d.pp > 2 ? 2.0 : 1.0) * local_tokens * h * a;
  const StageEstimate& w = e.worst_stage;
  if (!fsdp) {
    e.comm.dp = (s_dense - 1) / s_dense * w.dense_params * (grad_bytes + a) +
                (s_expert - 1) / s_expert * w.expert_params * (grad_bytes + a);
  } else {
    e.comm.dp = (s_dense - 1) / s_dense * (w.dense_params + w.expert_params) * (grad_bytes + 2.0 * a);
  }
  return e;
}

}  // namespace moerl
