#include "trainer/full_model.h"

#include <map>
#include <set>
#include <string>

#include "common/logging.h"
#include "trainer/model/layers.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/process_groups.h"

namespace moerl {

std::shared_ptr<Qwen3Model> GatherFullModel(Qwen3Model& model, const std::vector<HfBinding>& bindings,
                                            c10::ScalarType dtype, const ParallelState& parallel) {
  // Every HF tensor below is copied or zeroed: no init to draw first.
  auto full = std::make_shared<Qwen3Model>(model.config(), Qwen3Model::Uninitialized{});
  full->to(dtype);
  at::NoGradGuard no_grad;
  std::map<std::string, HfBinding> held;
  std::set<std::string> sliced;  // parameter names of the tensor-parallel slices
  for (const HfBinding& b : bindings) held[b.hf_name] = b;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (auto w = std::dynamic_pointer_cast<WeightModule>(item.value()); w && w->sliced()) {
      sliced.insert(item.key() + ".weight");
    }
  }
  const ParallelDims& dims = parallel.dims();
  // Tied embeddings under pp: the last stage's copy of the table is not
  // counted (the first stage's is the one).
  if (dims.pp > 1 && !model.is_first_stage()) held.erase("model.embed_tokens.weight");
  for (HfBinding& b : HfBindings(*full)) {
    auto it = held.find(b.hf_name);
    if (it == held.end()) {
      b.view.zero_();
      continue;
    }
    const HfBinding& mine = it->second;
    if (mine.slice_dim < 0) {
      b.view.copy_(mine.view);
    } else {
      b.view.zero_();
      b.view.narrow(mine.slice_dim, mine.slice_start, mine.view.size(mine.slice_dim)).copy_(mine.view);
    }
  }
  auto sum_over = [](at::Tensor& p, const ProcessGroup& group) {
    at::Tensor sum = p.detach().contiguous().clone();
    group.AllReduceSum(sum);
    p.detach().copy_(sum);
  };
  if (dims.tp > 1) {
    const ProcessGroup& tp = parallel.group(RankGroupKind::kTensor);
    for (auto& item : full->named_parameters(/*recurse=*/true)) {
      if (sliced.count(item.key())) sum_over(item.value(), tp);
    }
  }
  for (at::Tensor& p : SplitParameters(*full).experts) {
    if (dims.ep > 1) sum_over(p, parallel.group(RankGroupKind::kExpert));
    if (dims.etp > 1) sum_over(p, parallel.group(RankGroupKind::kExpertTensor));
  }
  if (dims.pp > 1) {
    // Each tensor is nonzero on the one stage that holds it.
    const ProcessGroup& pp = parallel.group(RankGroupKind::kPipeline);
    for (at::Tensor& p : full->parameters(/*recurse=*/true)) sum_over(p, pp);
  }
  return full;
}

std::shared_ptr<Qwen3Model> FullModel(const std::shared_ptr<Qwen3Model>& model, const ParallelState& parallel) {
  if (parallel.world_size() == 1 && model->device().is_cpu()) return model;
  // The parameters' dtype (Qwen3Model::dtype() reads the embedding, which a
  // middle or last pipeline stage may not hold).
  return GatherFullModel(*model, HfBindings(*model), model->parameters().front().scalar_type(), parallel);
}

std::vector<HfBinding> MasterBindings(Qwen3Model& model, const std::vector<at::Tensor>& masters) {
  const std::vector<at::Tensor> params = model.parameters();
  MOERL_CHECK(params.size() == masters.size());
  std::vector<HfBinding> out = HfBindings(model);
  for (HfBinding& b : out) {
    size_t i = 0;
    while (i < params.size() && !b.view.is_alias_of(params[i])) ++i;
    MOERL_CHECK(i < params.size()) << b.hf_name << " is not a view of a parameter";
    MOERL_CHECK(params[i].is_contiguous() && masters[i].is_contiguous() && params[i].sizes() == masters[i].sizes())
        << b.hf_name;
    // The same element offsets: the masters are contiguous copies of the
    // (contiguous) parameters.
    b.view = masters[i].as_strided(b.view.sizes(), b.view.strides(),
                                   masters[i].storage_offset() + b.view.storage_offset() -
                                       params[i].storage_offset());
  }
  return out;
}

std::shared_ptr<Qwen3Model> PublishedModel(const std::shared_ptr<Qwen3Model>& model,
                                           const std::shared_ptr<Qwen3Model>& full, const TrainOptimizer& optimizer,
                                           c10::ScalarType publish_dtype, const ParallelState& parallel) {
  if (publish_dtype != at::kFloat) return full;
  // A sharded optimizer gathers its master shards (every rank is here).
  const std::vector<at::Tensor> masters = optimizer.FullMasterWeights();
  if (masters.empty()) return full;
  return GatherFullModel(*model, MasterBindings(*model, masters), at::kFloat, parallel);
}

}  // namespace moerl
