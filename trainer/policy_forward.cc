#include "trainer/policy_forward.h"

#include <ATen/ops/tensor.h>

#include "common/logging.h"
#include "trainer/model/logprobs.h"

namespace moerl {

PolicyOutput PolicyForward(Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                           const IndexList& indices, const PolicyForwardOptions& options) {
  std::vector<std::vector<int64_t>> packed;
  std::vector<int64_t> rows, targets;
  PolicyOutput out;
  int64_t start = 0;
  for (int64_t i : indices) {
    const TrainSequence& s = seqs[i];
    MOERL_CHECK(s.prompt_len >= 1 && s.OutputLen() >= 1) << "sequence " << i;
    packed.push_back(s.tokens);
    for (int64_t t = s.prompt_len; t < s.Length(); ++t) {
      rows.push_back(start + t - 1);
      targets.push_back(s.tokens[t]);
    }
    out.output_lens.push_back(s.OutputLen());
    start += s.Length();
  }
  out.num_tokens = start;
  ModelInput in = ModelInput::Pack(packed);
  ModelOutput fwd = model.Forward(in);
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  at::Tensor hidden_nd = fwd.hidden_td.index_select(0, at::tensor(rows, i64));  // [N, D]
  TokenLogProbs lp = ComputeTokenLogProbs(hidden_nd, model.lm_head_weight(), at::tensor(targets, i64),
                                          options.temperature, options.with_entropy);
  out.logp_n = lp.logprobs_n;
  out.entropy_n = lp.entropy_n;
  out.aux_loss = fwd.aux_loss;
  out.z_loss = fwd.z_loss;
  out.topk_ids_tk = std::move(fwd.topk_ids_tk);
  return out;
}

}  // namespace moerl
