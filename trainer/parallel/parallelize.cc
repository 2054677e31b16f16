#include "trainer/parallel/parallelize.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros_like.h>

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "trainer/parallel/alltoall_dispatcher.h"
#include "trainer/parallel/context_parallel.h"
#include "trainer/parallel/tensor_parallel.h"

namespace moerl {
namespace {

// Router statistics summed over the ranks of one batch (tp-dp-cp).
class GroupRouterStatsReducer : public RouterStatsReducer {
 public:
  explicit GroupRouterStatsReducer(std::shared_ptr<const ProcessGroup> group) : group_(std::move(group)) {}
  at::Tensor Sum(const at::Tensor& stats) override {
    at::Tensor sum = stats.contiguous().clone();
    group_->AllReduceSum(sum);
    return sum;
  }

 private:
  std::shared_ptr<const ProcessGroup> group_;
};

}  // namespace

absl::StatusOr<std::pair<int64_t, int64_t>> PipelineStageLayers(int64_t num_layers, int pp, int stage,
                                                                const std::vector<int64_t>& split) {
  MOERL_CHECK(pp >= 1 && stage >= 0 && stage < pp);
  if (split.empty()) {
    if (num_layers % pp != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "num_hidden_layers=", num_layers, " is not divisible by pp=", pp,
          "; choose a pp that divides it or give the layers per stage (ParallelizeOptions::pipeline_stage_layers)"));
    }
    const int64_t per_stage = num_layers / pp;
    return std::make_pair(stage * per_stage, (stage + 1) * per_stage);
  }
  if (static_cast<int>(split.size()) != pp) {
    return absl::InvalidArgumentError(
        absl::StrCat("pipeline_stage_layers has ", split.size(), " entries, but pp=", pp, " needs one per stage"));
  }
  int64_t sum = 0, begin = 0;
  for (int i = 0; i < pp; ++i) {
    if (split[i] < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("pipeline_stage_layers[", i, "]=", split[i], "; every stage needs at least one layer"));
    }
    if (i == stage) begin = sum;
    sum += split[i];
  }
  if (sum != num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("pipeline_stage_layers sum to ", sum,
                                                   " but the model has num_hidden_layers=", num_layers));
  }
  return std::make_pair(begin, begin + split[stage]);
}

absl::Status CheckLayoutImplemented(const ParallelDims& dims) {
  if (dims.cp > 1 && dims.pp > 1) {
    return absl::UnimplementedError(absl::StrCat("the layout ", DebugString(dims), " uses cp=", dims.cp,
                                                 " together with pp=", dims.pp,
                                                 "; context parallel inside pipeline stages is not implemented"));
  }
  if (dims.etp > 1 && dims.etp != dims.tp) {
    return absl::UnimplementedError(absl::StrCat("the layout ", DebugString(dims), " uses etp=", dims.etp,
                                                 " with tp=", dims.tp,
                                                 "; expert tensor parallel needs etp = tp, on the same ranks"));
  }
  return absl::OkStatus();
}

absl::Status ApplyTensorParallel(Qwen3Model& model, const ParallelState& state) {
  const ParallelDims& dims = state.dims();
  const ModelConfig& c = model.config();
  if (dims.tp == 1) return absl::OkStatus();
  if (c.vocab_size % dims.tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("vocab_size ", c.vocab_size, " does not split over tp=", dims.tp,
                                                   " (vocabulary-parallel embedding and LM head); use a tp that "
                                                   "divides it"));
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (!c.IsMoeLayer(l) && c.intermediate_size % dims.tp != 0) {
      return absl::InvalidArgumentError(absl::StrCat("intermediate_size ", c.intermediate_size,
                                                     " does not split over tp=", dims.tp, " (dense layer ", l,
                                                     "); use a tp that divides it"));
    }
  }
  auto tp_group = state.shared_group(RankGroupKind::kTensor);
  if (dims.etp > 1 && (dims.etp != dims.tp ||
                       state.group(RankGroupKind::kExpertTensor).ranks() != tp_group->ranks())) {
    return absl::UnimplementedError(absl::StrCat(
        "the layout ", DebugString(dims), " splits experts over etp=", dims.etp, " with etp group ",
        state.group(RankGroupKind::kExpertTensor).name(), " and tp group ", tp_group->name(),
        "; expert tensor parallel needs the same ranks as tp (e.g. (attn:d2t2|ffn:d1t2e2))"));
  }
  const int64_t tp = dims.tp, r = tp_group->rank();
  const ProcessGroup* group = tp_group.get();  // ParallelState owns it; it outlives the model's graphs
  // Sequence parallel: blocks gather the token rows in and reduce-scatter out.
  BlockMaps maps;
  maps.before = [group](const at::Tensor& x_sd) { return GatherSequence(x_sd, *group); };
  maps.after = [group](const at::Tensor& y_td) { return ReduceScatterSequence(y_td, *group); };
  const int64_t d = c.head_dim, heads = c.num_attention_heads / tp, kv_heads = c.num_key_value_heads / tp;
  for (const auto& layer : model.layers()) {
    Attention& a = *layer->self_attn;
    // Heads [r h/tp, (r+1) h/tp); with GQA their KV heads are [r k/tp, ...).
    a.q_proj->KeepSlice(0, r * heads * d, heads * d);
    a.k_proj->KeepSlice(0, r * kv_heads * d, kv_heads * d);
    a.v_proj->KeepSlice(0, r * kv_heads * d, kv_heads * d);
    a.o_proj->KeepSlice(1, r * heads * d, heads * d);
    a.set_maps(maps);
    if (layer->mlp) {
      DenseMlp& m = *layer->mlp;
      const int64_t f = c.intermediate_size / tp;
      m.gate_proj->KeepSlice(0, r * f, f);
      m.up_proj->KeepSlice(0, r * f, f);
      m.down_proj->KeepSlice(1, r * f, f);
      m.set_maps(maps);
    }
    // etp = 1: MoE layers run on the sequence shard as they are (router
    // included): each rank's experts take its own tokens (through the ep
    // dispatcher), and tp is part of edp, so GradientReducer sums the expert
    // gradients over it.
    // etp = tp: the MoE block gathers the rows of its tp group (router on
    // all of them, replicated), each rank's experts hold a slice of the
    // intermediate size, and the partial outputs are reduce-scattered back.
    if (layer->moe && dims.etp > 1) {
      const int64_t f = c.moe_intermediate_size / dims.etp;
      layer->moe->experts->KeepIntermediateSlice(r * f, f);
      layer->moe->set_maps(maps);
    }
  }
  const int64_t v = c.vocab_size / tp, first_row = r * v;
  // On a pipeline stage: the embedding where the stage holds it (first, or
  // the last's tied copy), the LM head on the last.
  if (model.holds_embedding()) model.embed_tokens().KeepSlice(0, first_row, v);
  if (model.lm_head() != nullptr) model.lm_head()->KeepSlice(0, first_row, v);
  model.SetSequenceShard(r, tp);
  model.SetTokenScorer([group, first_row](const at::Tensor& hidden_sd, const at::Tensor& lm_head_vd,
                                          const at::Tensor& rows_n, const at::Tensor& targets_n, double temperature,
                                          bool with_entropy) {
    // Every rank of the group scores all rows; the [N, V] logits exist only
    // as each rank's [N, V/tp] slice.
    return VocabParallelTokenLogProbs(GatherSequence(hidden_sd, *group).index_select(0, rows_n), lm_head_vd,
                                      targets_n, first_row, temperature, *group, with_entropy);
  });
  if (model.is_first_stage()) model.SetEmbedding([group, first_row](const at::Tensor& table_vd, const at::Tensor& tokens_t) {
    return VocabParallelEmbedding(table_vd, tokens_t, first_row, *group, /*sequence_parallel=*/true);
  });
  return absl::OkStatus();
}

absl::Status ParallelizeQwen3(Qwen3Model& model, const ParallelState& state, const ParallelizeOptions& options) {
  const ParallelDims& dims = state.dims();
  if (dims.etp > 1 && dims.tp == 1) {
    return absl::UnimplementedError(absl::StrCat("the layout ", DebugString(dims), " uses etp=", dims.etp,
                                                 " without tp; expert tensor parallel needs etp = tp"));
  }
  // tp with pp: ApplyTensorParallel slices whatever the stage holds, and
  // each tp rank's pipeline peers are the same tp rank of the other stages,
  // so the activations between stages are that rank's sequence rows.
  // An explicit split replaces the layers % pp rule.
  ParallelDims checked = dims;
  if (!options.pipeline_stage_layers.empty()) checked.pp = 1;
  MOERL_RETURN_IF_ERROR(ValidateLayoutForModel(checked, model.config()));
  if (dims.pp > 1) {
    MOERL_ASSIGN_OR_RETURN(auto range, PipelineStageLayers(model.config().num_hidden_layers, dims.pp,
                                                           state.coordinates().pp, options.pipeline_stage_layers));
    if (!model.holds_all_layers()) {
      return absl::FailedPreconditionError("ParallelizeQwen3 on a model that is already a pipeline stage");
    }
    model.KeepStage(range.first, range.second);
  }
  MOERL_RETURN_IF_ERROR(ApplyTensorParallel(model, state));
  MOERL_RETURN_IF_ERROR(ApplyContextParallel(model, state));  // after tp: its parts divide by tp
  if (dims.ep > 1) {
    auto ep_group = state.shared_group(RankGroupKind::kExpert);
    auto dispatcher = std::make_shared<AllToAllTokenDispatcher>(ep_group);
    const int64_t num_experts = model.config().num_experts;
    for (const auto& layer : model.layers()) {
      if (!layer->moe) continue;
      Experts& experts = *layer->moe->experts;
      const int64_t first = dispatcher->FirstLocalExpert(num_experts);
      const int64_t count = dispatcher->NumLocalExperts(num_experts);
      if (experts.first_expert() != first || experts.num_local() != count) experts.KeepRange(first, count);
    }
    model.SetDispatcher(dispatcher);
  }
  auto batch_group = state.shared_group(RankGroupKind::kTensorDataContext);
  if (batch_group->size() > 1 && model.config().HasMoeLayers()) {
    model.SetRouterStatsReducer(std::make_shared<GroupRouterStatsReducer>(batch_group));
  }
  return absl::OkStatus();
}

ParameterGroups SplitParameters(Qwen3Model& model) {
  std::set<const at::TensorImpl*> expert_impls, sliced_impls;
  for (const auto& layer : model.layers()) {
    if (!layer->moe) continue;
    expert_impls.insert(layer->moe->experts->gate_up_proj.unsafeGetTensorImpl());
    expert_impls.insert(layer->moe->experts->down_proj.unsafeGetTensorImpl());
  }
  for (const auto& module : model.modules(/*include_self=*/false)) {
    if (auto w = std::dynamic_pointer_cast<WeightModule>(module); w && w->sliced()) {
      sliced_impls.insert(w->weight.unsafeGetTensorImpl());
    }
  }
  ParameterGroups groups;
  for (at::Tensor& p : model.parameters(/*recurse=*/true)) {
    if (expert_impls.count(p.unsafeGetTensorImpl())) {
      groups.experts.push_back(p);
    } else if (sliced_impls.count(p.unsafeGetTensorImpl())) {
      groups.tensor_sharded.push_back(p);
    } else {
      groups.dense.push_back(p);
    }
  }
  return groups;
}

GradientReducer::GradientReducer(const ParallelState& state, int64_t bucket_bytes)
    : dense_group_(state.shared_group(RankGroupKind::kTensorDataContext)),
      sharded_group_(state.shared_group(RankGroupKind::kDataContext)),
      expert_group_(state.shared_group(RankGroupKind::kExpertData)),
      embedding_group_(state.shared_group(RankGroupKind::kEmbedding)),
      bucket_bytes_(bucket_bytes) {}

void GradientReducer::ReduceList(const std::vector<at::Tensor>& params, const ProcessGroup& group,
                                 double scale) const {
  at::NoGradGuard no_grad;
  for (const at::Tensor& p : params) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
  }
  if (group.size() == 1) {
    if (scale != 1.0) {
      for (const at::Tensor& p : params) p.mutable_grad().mul_(scale);
    }
    return;
  }
  // Buckets of whole parameters in model order, flattened into fp32.
  size_t begin = 0;
  while (begin < params.size()) {
    size_t end = begin;
    int64_t bytes = 0;
    std::vector<at::Tensor> flat;
    while (end < params.size() && (end == begin || bytes + params[end].numel() * 4 <= bucket_bytes_)) {
      flat.push_back(params[end].grad().reshape({-1}).to(at::kFloat));
      bytes += params[end].numel() * 4;
      ++end;
    }
    at::Tensor bucket = at::cat(flat);
    group.AllReduceSum(bucket);
    if (scale != 1.0) bucket.mul_(scale);
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      at::Tensor g = params[i].mutable_grad();
      g.copy_(bucket.narrow(0, offset, g.numel()).view(g.sizes()));
      offset += g.numel();
    }
    begin = end;
  }
}

absl::Status GradientReducer::Reduce(Qwen3Model& model, double scale) const {
  ParameterGroups groups = SplitParameters(model);
  try {
    ReduceList(groups.dense, *dense_group_, scale);
    ReduceList(groups.tensor_sharded, *sharded_group_, scale);
    ReduceList(groups.experts, *expert_group_, scale);
    // Tied embeddings under pp: the first stage's table and the last
    // stage's copy get the sum of both gradients (already scaled).
    if (model.config().tie_word_embeddings && model.holds_embedding() && embedding_group_->size() > 1) {
      for (auto& item : model.named_parameters(/*recurse=*/true)) {
        if (item.key() != "model.embed_tokens.weight") continue;
        at::NoGradGuard no_grad;
        at::Tensor g = item.value().grad().to(at::kFloat).contiguous();
        embedding_group_->AllReduceSum(g);
        item.value().mutable_grad().copy_(g);
      }
    }
  } catch (const CollectiveError& e) {
    return absl::UnavailableError(absl::StrCat("reducing gradients: ", e.what()));
  }
  return absl::OkStatus();
}

namespace {

double SquaredNorm(const std::vector<at::Tensor>& params) {
  double sum = 0.0;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) sum += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  return sum;
}

}  // namespace

double SumOverGroup(const ParallelState& state, RankGroupKind kind, double local) {
  at::Tensor sum = at::tensor({local}, at::TensorOptions().dtype(at::kDouble));
  state.group(kind).AllReduceSum(sum);
  return sum.item<double>();
}

double GlobalGradNorm(Qwen3Model& model, const ParallelState& state) {
  ParameterGroups groups = SplitParameters(model);
  // Dense parameters are whole and identical across tp-dp-cp; each TP rank
  // holds different slices of the sharded ones, identical across dp-cp;
  // each pipeline stage holds different layers. Experts differ over ep
  // (ranges), etp (intermediate slices) and pp, identical across edp.
  if (!model.is_first_stage() && model.holds_embedding()) {
    // The last stage's copy of a tied embedding: counted on the first.
    const at::TensorImpl* copy = model.embed_tokens().weight.unsafeGetTensorImpl();
    for (std::vector<at::Tensor>* list : {&groups.dense, &groups.tensor_sharded}) {
      std::vector<at::Tensor> kept;
      for (const at::Tensor& p : *list) {
        if (p.unsafeGetTensorImpl() != copy) kept.push_back(p);
      }
      *list = std::move(kept);
    }
  }
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor dense_sq = at::tensor({SquaredNorm(groups.dense)}, f64);
  state.group(RankGroupKind::kPipeline).AllReduceSum(dense_sq);
  at::Tensor sharded_sq = at::tensor({SquaredNorm(groups.tensor_sharded)}, f64);
  state.group(RankGroupKind::kModel).AllReduceSum(sharded_sq);  // tp-pp
  at::Tensor expert_sq = at::tensor({SquaredNorm(groups.experts)}, f64);
  state.group(RankGroupKind::kExpertTensorExpertPipeline).AllReduceSum(expert_sq);
  return std::sqrt(dense_sq.item<double>() + sharded_sq.item<double>() + expert_sq.item<double>());
}

double ClipGradNorm(Qwen3Model& model, const ParallelState& state, double max_norm) {
  const double norm = GlobalGradNorm(model, state);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    at::NoGradGuard no_grad;
    for (at::Tensor& p : model.parameters(/*recurse=*/true)) {
      if (p.grad().defined()) p.mutable_grad().mul_(coef);
    }
  }
  return norm;
}

}  // namespace moerl
