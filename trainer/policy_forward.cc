#include "trainer/policy_forward.h"

#include <ATen/ops/tensor.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "trainer/model/logprobs.h"

namespace moerl {

absl::Status ValidateRoutes(const ModelConfig& config, const std::vector<TrainSequence>& seqs) {
  for (size_t i = 0; i < seqs.size(); ++i) {
    const TrainSequence& s = seqs[i];
    if (s.routed_experts.empty()) continue;
    if (s.routed_layers != config.NumMoeLayers() || s.routed_top_k != config.num_experts_per_tok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "routed_experts: sequence ", i, " carries routes for ", s.routed_layers, " layers x top-", s.routed_top_k,
          ", the model has ", config.NumMoeLayers(), " MoE layers x top-", config.num_experts_per_tok));
    }
    const int64_t want = s.OutputLen() * s.routed_layers * s.routed_top_k;
    if (static_cast<int64_t>(s.routed_experts.size()) != want) {
      return absl::InvalidArgumentError(absl::StrCat("routed_experts: sequence ", i, " carries ",
                                                     s.routed_experts.size(), " ids, want ", want, " (",
                                                     s.OutputLen(), " completion tokens x ", s.routed_layers,
                                                     " layers x top-", s.routed_top_k, ")"));
    }
    for (size_t j = 0; j < s.routed_experts.size(); ++j) {
      if (s.routed_experts[j] < 0 || s.routed_experts[j] >= config.num_experts) {
        return absl::InvalidArgumentError(absl::StrCat("routed_experts: sequence ", i, " routed_experts[", j,
                                                       "] = ", s.routed_experts[j], " is not an expert of [0, ",
                                                       config.num_experts, ")"));
      }
    }
  }
  return absl::OkStatus();
}

PolicyBatch PackPolicyBatch(const Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                            const IndexList& indices, const PolicyForwardOptions& options) {
  std::vector<std::vector<int64_t>> packed;
  std::vector<int64_t> rows, targets;
  PolicyBatch batch;
  int64_t start = 0;
  for (int64_t i : indices) {
    const TrainSequence& s = seqs[i];
    MOERL_CHECK(s.prompt_len >= 1 && s.OutputLen() >= 1) << "sequence " << i;
    packed.push_back(s.tokens);
    for (int64_t t = s.prompt_len; t < s.Length(); ++t) {
      rows.push_back(start + t - 1);
      targets.push_back(s.tokens[t]);
    }
    batch.output_lens.push_back(s.OutputLen());
    start += s.Length();
  }
  batch.num_tokens = start;
  // Sequence parallelism splits the packed tokens evenly: pad T with a
  // segment of its own (its rows are never scored, the routers skip them).
  const int64_t shards = model.sequence_shards();
  const int64_t padding = (shards - start % shards) % shards;
  if (padding > 0) packed.emplace_back(static_cast<size_t>(padding), int64_t{0});
  ModelInput in = ModelInput::Pack(packed);
  in.padding_tokens = padding;
  if (options.replay_routes) {
    // Completion token j of a sequence sits at packed row start + P + j; the
    // padding rows route normally (-1). Under sequence parallelism the model
    // takes each shard's rows.
    const ModelConfig& c = model.config();
    const int64_t layers = c.NumMoeLayers(), k = c.num_experts_per_tok, total = start + padding;
    std::vector<int64_t> forced(static_cast<size_t>(layers * total * k), -1);  // [layers, T, k]
    bool any = false;
    int64_t row0 = 0;
    for (int64_t i : indices) {
      const TrainSequence& s = seqs[i];
      if (!s.routed_experts.empty()) {
        any = true;
        for (int64_t j = 0; j < s.OutputLen(); ++j) {
          for (int64_t l = 0; l < layers; ++l) {
            for (int64_t e = 0; e < k; ++e) {
              forced[(l * total + row0 + s.prompt_len + j) * k + e] = s.routed_experts[(j * layers + l) * k + e];
            }
          }
        }
      }
      row0 += s.Length();
    }
    if (any) {
      at::Tensor all_ltk = at::tensor(forced, at::TensorOptions().dtype(at::kLong)).reshape({layers, total, k});
      for (int64_t l = 0; l < layers; ++l) in.forced_topk_ids_tk.push_back(all_ltk[l]);
    }
  }
  batch.input = std::move(in);
  // The scored rows and targets on the model's device.
  const auto i64 = at::TensorOptions().dtype(at::kLong).device(model.device());
  batch.rows_n = at::tensor(rows, i64);
  batch.targets_n = at::tensor(targets, i64);
  return batch;
}

PolicyOutput ScorePolicyBatch(Qwen3Model& model, const PolicyBatch& batch, const at::Tensor& hidden_td,
                              const PolicyForwardOptions& options) {
  TokenLogProbs lp = model.token_scorer()
                         ? model.token_scorer()(hidden_td, model.lm_head_weight(), batch.rows_n, batch.targets_n,
                                                options.temperature, options.with_entropy)
                         : ComputeTokenLogProbs(hidden_td.index_select(0, batch.rows_n), model.lm_head_weight(),
                                                batch.targets_n, options.temperature, options.with_entropy);
  PolicyOutput out;
  out.logp_n = lp.logprobs_n;
  out.entropy_n = lp.entropy_n;
  out.output_lens = batch.output_lens;
  out.num_tokens = batch.num_tokens;
  return out;
}

PolicyOutput PolicyForward(Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                           const IndexList& indices, const PolicyForwardOptions& options) {
  const PolicyBatch batch = PackPolicyBatch(model, seqs, indices, options);
  ModelOutput fwd = model.Forward(batch.input);
  PolicyOutput out = ScorePolicyBatch(model, batch, fwd.hidden_td, options);
  out.aux_loss = fwd.aux_loss;
  out.z_loss = fwd.z_loss;
  out.topk_ids_tk = std::move(fwd.topk_ids_tk);
  out.router_topk_ids_tk = std::move(fwd.router_topk_ids_tk);
  return out;
}

}  // namespace moerl
