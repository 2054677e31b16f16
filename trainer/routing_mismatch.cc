#include "trainer/routing_mismatch.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/stack.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace moerl {
namespace {

// Sum, count, min and max of fp64 `values_n` as one stat.
void RecordAll(StatsRecorder* stats, const std::string& name, const at::Tensor& values_n) {
  if (values_n.numel() == 0) return;
  stats->Stat(name, values_n.sum().item<double>(), static_cast<double>(values_n.numel()),
              values_n.min().item<double>(), values_n.max().item<double>());
}

}  // namespace

RoutingMismatch::RoutingMismatch(const ModelConfig& config) : top_k_(config.num_experts_per_tok) {
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    if (config.IsMoeLayer(l)) moe_layers_.push_back(l);
  }
}

void RoutingMismatch::Add(const std::vector<TrainSequence>& seqs, const IndexList& indices,
                          const PolicyOutput& out) {
  const int64_t layers = static_cast<int64_t>(moe_layers_.size());
  if (layers == 0 || static_cast<int64_t>(out.router_topk_ids_tk.size()) != layers) return;
  if (missed_ln_.size() < seqs.size()) missed_ln_.resize(seqs.size());
  int64_t row0 = 0;
  for (int64_t i : indices) {
    const TrainSequence& s = seqs[i];
    if (!s.routed_experts.empty()) {
      const int64_t n = s.OutputLen();
      MOERL_CHECK(static_cast<int64_t>(s.routed_experts.size()) == n * layers * top_k_) << "sequence " << i;
      at::Tensor inferred_nlk =
          at::from_blob(const_cast<int32_t*>(s.routed_experts.data()), {n, layers, top_k_}, at::kInt)
              .to(at::kLong);
      std::vector<at::Tensor> missed;
      for (int64_t l = 0; l < layers; ++l) {
        // Completion token j is the input at packed row row0 + P + j.
        at::Tensor own_nk = out.router_topk_ids_tk[l].narrow(0, row0 + s.prompt_len, n).to(at::kCPU, at::kLong);
        at::Tensor inferred_nk = inferred_nlk.select(1, l);
        // [n, k(inferred), k(own)] -> is each inferred expert among the own?
        at::Tensor found_nk = inferred_nk.unsqueeze(2).eq(own_nk.unsqueeze(1)).any(2);
        missed.push_back(found_nk.logical_not().sum(1));  // [n]
      }
      missed_ln_[i] = at::stack(missed);  // [l, n]
    }
    row0 += s.Length();
  }
}

bool RoutingMismatch::Has(int64_t seq) const {
  return seq >= 0 && static_cast<size_t>(seq) < missed_ln_.size() && missed_ln_[seq].defined();
}

const at::Tensor& RoutingMismatch::Missed(int64_t seq) const {
  MOERL_CHECK(Has(seq)) << "sequence " << seq << " was not compared";
  return missed_ln_[seq];
}

at::Tensor RoutingMismatch::TokenFraction(int64_t seq) const {
  const double slots = static_cast<double>(moe_layers_.size()) * static_cast<double>(top_k_);
  return Missed(seq).sum(0).to(at::kDouble) / slots;
}

int64_t RoutingMismatch::Tokens() const {
  int64_t n = 0;
  for (const at::Tensor& m : missed_ln_) {
    if (m.defined()) n += m.size(1);
  }
  return n;
}

void RoutingMismatch::Record(int64_t dropped, StatsRecorder* stats) const {
  std::vector<at::Tensor> token_frac, layer_missed;
  for (size_t i = 0; i < missed_ln_.size(); ++i) {
    if (!missed_ln_[i].defined()) continue;
    token_frac.push_back(TokenFraction(static_cast<int64_t>(i)));
    layer_missed.push_back(missed_ln_[i]);
  }
  if (token_frac.empty()) return;
  RecordAll(stats, "ppo_actor/routing/mismatch_frac", at::cat(token_frac));
  at::Tensor layer_frac_ln = at::cat(layer_missed, 1).to(at::kDouble) / static_cast<double>(top_k_);
  for (size_t l = 0; l < moe_layers_.size(); ++l) {
    RecordAll(stats, absl::StrCat("ppo_actor/routing/layer", moe_layers_[l], "/mismatch_frac"),
              layer_frac_ln[static_cast<int64_t>(l)]);
  }
  stats->Denominator("ppo_actor/routing/n_tokens", static_cast<double>(Tokens()));
  stats->Denominator("ppo_actor/routing/dropped_tokens", static_cast<double>(dropped));
}

}  // namespace moerl
