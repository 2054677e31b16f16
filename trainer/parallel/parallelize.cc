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

absl::Status CheckLayoutImplemented(const ParallelDims& dims) {
  for (auto [name, size] : {std::pair<const char*, int>{"tp", dims.tp}, {"cp", dims.cp}, {"pp", dims.pp},
                            {"etp", dims.etp}}) {
    if (size > 1) {
      return absl::UnimplementedError(absl::StrCat("the layout ", DebugString(dims), " uses ", name, "=", size,
                                                   "; moerl's trainer has data and expert parallelism so far"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParallelizeQwen3(Qwen3Model& model, const ParallelState& state) {
  const ParallelDims& dims = state.dims();
  MOERL_RETURN_IF_ERROR(CheckLayoutImplemented(dims));
  MOERL_RETURN_IF_ERROR(ValidateLayoutForModel(dims, model.config()));
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
  std::set<const at::TensorImpl*> expert_impls;
  for (const auto& layer : model.layers()) {
    if (!layer->moe) continue;
    expert_impls.insert(layer->moe->experts->gate_up_proj.unsafeGetTensorImpl());
    expert_impls.insert(layer->moe->experts->down_proj.unsafeGetTensorImpl());
  }
  ParameterGroups groups;
  for (at::Tensor& p : model.parameters(/*recurse=*/true)) {
    (expert_impls.count(p.unsafeGetTensorImpl()) ? groups.experts : groups.dense).push_back(p);
  }
  return groups;
}

GradientReducer::GradientReducer(const ParallelState& state, int64_t bucket_bytes)
    : dense_group_(state.shared_group(RankGroupKind::kDataContext)),
      expert_group_(state.shared_group(RankGroupKind::kExpertData)),
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
    ReduceList(groups.experts, *expert_group_, scale);
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

double SumOverDataParallel(const ParallelState& state, double local) {
  at::Tensor sum = at::tensor({local}, at::TensorOptions().dtype(at::kDouble));
  state.group(RankGroupKind::kDataContext).AllReduceSum(sum);
  return sum.item<double>();
}

double GlobalGradNorm(Qwen3Model& model, const ParallelState& state) {
  ParameterGroups groups = SplitParameters(model);
  // Dense parameters are whole and identical on every rank (no TP/PP yet);
  // each EP rank holds different experts, identical across edp.
  at::Tensor expert_sq = at::tensor({SquaredNorm(groups.experts)}, at::TensorOptions().dtype(at::kDouble));
  state.group(RankGroupKind::kExpert).AllReduceSum(expert_sq);
  return std::sqrt(SquaredNorm(groups.dense) + expert_sq.item<double>());
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
