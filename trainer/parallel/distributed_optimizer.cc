#include "trainer/parallel/distributed_optimizer.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/serialize.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/tensor_parallel.h"

namespace moerl {
namespace {

std::string Key(size_t list, size_t bucket, const char* what) {
  return absl::StrCat("moerl_distributed/", list, "/", bucket, "/", what);
}

}  // namespace

DistributedOptimizer::DistributedOptimizer(Qwen3Model& model, const ParallelState& state,
                                           const OptimizerSettings& settings, LrSchedule schedule,
                                           int64_t bucket_numel)
    : TrainOptimizer(model.parameters(/*recurse=*/true), settings, std::move(schedule), NoState{}),
      embedding_group_(state.shared_group(RankGroupKind::kEmbedding)) {
  std::map<const at::TensorImpl*, size_t> index;
  for (size_t i = 0; i < params().size(); ++i) {
    index[params()[i].unsafeGetTensorImpl()] = i;
    low_precision_ |= params()[i].scalar_type() != at::kFloat;
  }
  // The tied embedding's copy on the last stage (GradientReducer's and
  // GlobalGradNorm's rules).
  int64_t tied = -1;
  bool exclude_tied = false;
  if (model.config().tie_word_embeddings && model.holds_embedding()) {
    for (auto& item : model.named_parameters(/*recurse=*/true)) {
      if (item.key() == "model.embed_tokens.weight") tied = static_cast<int64_t>(index.at(item.value().unsafeGetTensorImpl()));
    }
    if (embedding_group_->size() > 1) tied_copy_ = tied;
    exclude_tied = !model.is_first_stage();
  }
  ParameterGroups groups = SplitParameters(model);
  struct Source {
    const std::vector<at::Tensor>* params;
    RankGroupKind group, across;
  };
  const Source sources[] = {
      {&groups.dense, RankGroupKind::kTensorDataContext, RankGroupKind::kPipeline},
      {&groups.tensor_sharded, RankGroupKind::kDataContext, RankGroupKind::kModel},
      {&groups.experts, RankGroupKind::kExpertData, RankGroupKind::kExpertTensorExpertPipeline},
  };
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(params().empty() ? at::kCPU : params()[0].device());
  for (const Source& src : sources) {
    ShardedList list;
    list.group = state.shared_group(src.group);
    list.across = state.shared_group(src.across);
    const int64_t n = list.group->size();
    size_t i = 0;
    while (i < src.params->size()) {
      Bucket b;
      while (i < src.params->size() && (b.params.empty() || b.numel + (*src.params)[i].numel() <= bucket_numel)) {
        const size_t p = index.at((*src.params)[i].unsafeGetTensorImpl());
        if (exclude_tied && static_cast<int64_t>(p) == tied) {
          b.excluded_begin = b.numel;
          b.excluded_end = b.numel + params()[p].numel();
        }
        b.params.push_back(p);
        b.offsets.push_back(b.numel);
        b.numel += params()[p].numel();
        ++i;
      }
      b.shard = (b.numel + n - 1) / n;
      b.exp_avg = at::zeros({b.shard}, f32);
      b.exp_avg_sq = at::zeros({b.shard}, f32);
      if (low_precision_) {
        at::NoGradGuard no_grad;
        b.master = MyShard(b, list, Flatten(b, list, [&](size_t p) { return params()[p].detach(); })).clone();
      }
      list.buckets.push_back(std::move(b));
    }
    lists_.push_back(std::move(list));
  }
  // What Load checks: this rank's groups and every bucket's size.
  for (const ShardedList& list : lists_) {
    absl::StrAppend(&layout_, list.group->name(), " rank ", list.group->rank(), ":");
    for (const Bucket& b : list.buckets) absl::StrAppend(&layout_, " ", b.numel);
    absl::StrAppend(&layout_, "; ");
  }
  absl::StrAppend(&layout_, low_precision_ ? "masters" : "no masters");
}

DistributedOptimizer::~DistributedOptimizer() = default;

at::Tensor DistributedOptimizer::Flatten(const Bucket& b, const ShardedList& list,
                                         const std::function<at::Tensor(size_t)>& values) const {
  std::vector<at::Tensor> flat;
  for (size_t p : b.params) flat.push_back(values(p).reshape({-1}).to(at::kFloat));
  const int64_t padding = b.shard * list.group->size() - b.numel;
  if (padding > 0) flat.push_back(at::zeros({padding}, flat[0].options()));
  return at::cat(flat);
}

at::Tensor DistributedOptimizer::MyShard(const Bucket& b, const ShardedList& list, const at::Tensor& flat) const {
  return flat.narrow(0, list.group->rank() * b.shard, b.shard);
}

std::vector<at::Tensor> DistributedOptimizer::Gather(const Bucket& b, const ShardedList& list,
                                                     const at::Tensor& shard) const {
  const at::Tensor flat = AllGatherRows(shard.contiguous(), *list.group);
  std::vector<at::Tensor> out;
  for (size_t k = 0; k < b.params.size(); ++k) {
    const at::Tensor& p = params()[b.params[k]];
    out.push_back(flat.narrow(0, b.offsets[k], p.numel()).view(p.sizes()));
  }
  return out;
}

void DistributedOptimizer::ZeroGrad() {
  for (const at::Tensor& p : params()) const_cast<at::Tensor&>(p).mutable_grad() = at::Tensor();
}

OptimizerStepResult DistributedOptimizer::Step(int64_t, const std::function<double(double)>&) {
  MOERL_CHECK(false) << "DistributedOptimizer clips on its shards: call Step(train_step) (ReducesGradients)";
  return {};
}

OptimizerStepResult DistributedOptimizer::Step(int64_t train_step) {
  at::NoGradGuard no_grad;
  OptimizerStepResult result;
  result.lr = LearningRate(train_step);
  auto grad = [&](size_t p) {
    const at::Tensor& g = params()[p].grad();
    return g.defined() ? g : at::zeros_like(params()[p]);
  };
  if (tied_copy_ >= 0) {
    // Both copies of a tied embedding step with the sum of their gradients.
    at::Tensor g = grad(static_cast<size_t>(tied_copy_)).to(at::kFloat).contiguous();
    embedding_group_->AllReduceSum(g);
    const_cast<at::Tensor&>(params()[tied_copy_]).mutable_grad() = g.to(params()[tied_copy_].scalar_type());
  }
  // Reduce-scatter: each rank gets the summed gradient of its shards.
  std::vector<std::vector<at::Tensor>> grads(lists_.size());
  double sum_sq = 0;
  for (size_t l = 0; l < lists_.size(); ++l) {
    const ShardedList& list = lists_[l];
    double list_sq = 0;
    for (const Bucket& b : list.buckets) {
      at::Tensor g = ReduceScatterRows(Flatten(b, list, grad), *list.group).contiguous();
      at::Tensor counted = g;
      if (b.excluded_end > b.excluded_begin) {
        // Leave the tied copy's elements of this shard out of the norm.
        const int64_t begin = list.group->rank() * b.shard;
        const int64_t lo = std::clamp(b.excluded_begin - begin, int64_t{0}, b.shard);
        const int64_t hi = std::clamp(b.excluded_end - begin, int64_t{0}, b.shard);
        counted = g.clone();
        counted.narrow(0, lo, hi - lo).zero_();
      }
      list_sq += counted.to(at::kDouble).pow(2).sum().item<double>();
      grads[l].push_back(g);
    }
    at::Tensor sq = at::tensor({list_sq}, at::TensorOptions().dtype(at::kDouble));
    list.group->AllReduceSum(sq);
    list.across->AllReduceSum(sq);
    sum_sq += sq.item<double>();
  }
  ZeroGrad();
  result.grad_norm = std::sqrt(sum_sq);
  if (!std::isfinite(result.grad_norm)) return result;  // AReaL: a non-finite norm skips the update
  const double max_norm = settings().gradient_clipping > 0 ? settings().gradient_clipping
                                                           : std::numeric_limits<double>::infinity();
  const double coef = max_norm / (result.grad_norm + 1e-6);
  // torch::optim::AdamW, elementwise on the shard.
  ++step_;
  const OptimizerSettings& o = settings();
  const double bias_correction1 = 1 - std::pow(o.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1 - std::pow(o.beta2, static_cast<double>(step_));
  const double step_size = result.lr / bias_correction1;
  for (size_t l = 0; l < lists_.size(); ++l) {
    ShardedList& list = lists_[l];
    for (size_t k = 0; k < list.buckets.size(); ++k) {
      Bucket& b = list.buckets[k];
      at::Tensor g = grads[l][k];
      if (coef < 1.0) g.mul_(coef);
      at::Tensor p = low_precision_ ? b.master
                                    : MyShard(b, list, Flatten(b, list, [&](size_t i) { return params()[i].detach(); }))
                                          .clone();
      if (o.weight_decay != 0) p.mul_(1 - result.lr * o.weight_decay);
      b.exp_avg.mul_(o.beta1).add_(g, 1 - o.beta1);
      b.exp_avg_sq.mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
      at::Tensor denom = (b.exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(o.eps);
      p.addcdiv_(b.exp_avg, denom, -step_size);
      // Every rank's updated shard into the parameters.
      const std::vector<at::Tensor> full = Gather(b, list, p);
      for (size_t j = 0; j < b.params.size(); ++j) const_cast<at::Tensor&>(params()[b.params[j]]).copy_(full[j]);
    }
  }
  result.updated = true;
  return result;
}

std::vector<at::Tensor> DistributedOptimizer::FullMasterWeights() const {
  std::vector<at::Tensor> out;
  if (!low_precision_) return out;
  out.resize(params().size());
  for (const ShardedList& list : lists_) {
    for (const Bucket& b : list.buckets) {
      std::vector<at::Tensor> full = Gather(b, list, b.master);
      for (size_t j = 0; j < b.params.size(); ++j) out[b.params[j]] = full[j].clone();
    }
  }
  return out;
}

int64_t DistributedOptimizer::ShardNumel() const {
  int64_t n = 0;
  for (const ShardedList& list : lists_) {
    for (const Bucket& b : list.buckets) n += b.shard;
  }
  return n;
}

int64_t DistributedOptimizer::StateBytes() const {
  int64_t bytes = 0;
  for (const ShardedList& list : lists_) {
    for (const Bucket& b : list.buckets) {
      for (const at::Tensor& t : {b.exp_avg, b.exp_avg_sq, b.master}) {
        if (t.defined()) bytes += t.numel() * static_cast<int64_t>(t.element_size());
      }
    }
  }
  return bytes;
}

std::vector<TrainOptimizer::ParameterOptimizerState> DistributedOptimizer::ExportParameterStates() const {
  at::NoGradGuard no_grad;
  std::vector<ParameterOptimizerState> out(params().size());
  for (const ShardedList& list : lists_) {
    for (const Bucket& b : list.buckets) {
      std::vector<at::Tensor> m = Gather(b, list, b.exp_avg), v = Gather(b, list, b.exp_avg_sq), w;
      if (low_precision_) w = Gather(b, list, b.master);
      for (size_t j = 0; j < b.params.size(); ++j) {
        ParameterOptimizerState& s = out[b.params[j]];
        s.exp_avg = m[j].clone();
        s.exp_avg_sq = v[j].clone();
        if (low_precision_) s.master = w[j].clone();
      }
    }
  }
  return out;
}

absl::Status DistributedOptimizer::ImportParameterStates(const std::vector<ParameterOptimizerState>& states,
                                                         int64_t adam_step) {
  if (states.size() != params().size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer state for ", states.size(), " parameters, the model has ", params().size()));
  }
  for (size_t i = 0; i < states.size(); ++i) {
    for (const at::Tensor& t : {states[i].exp_avg, states[i].exp_avg_sq}) {
      if (!t.defined() || !t.sizes().equals(params()[i].sizes())) {
        return absl::InvalidArgumentError(absl::StrCat("optimizer state of parameter ", i, " has shape ",
                                                       t.defined() ? c10::str(t.sizes()) : "(none)",
                                                       ", the parameter ", c10::str(params()[i].sizes())));
      }
    }
  }
  at::NoGradGuard no_grad;
  for (const ShardedList& list : lists_) {
    for (Bucket& b : const_cast<ShardedList&>(list).buckets) {
      b.exp_avg.copy_(MyShard(b, list, Flatten(b, list, [&](size_t p) { return states[p].exp_avg; })));
      b.exp_avg_sq.copy_(MyShard(b, list, Flatten(b, list, [&](size_t p) { return states[p].exp_avg_sq; })));
      if (low_precision_) {
        b.master.copy_(MyShard(b, list, Flatten(b, list, [&](size_t p) {
          return states[p].master.defined() ? states[p].master : params()[p].detach();
        })));
      }
    }
  }
  step_ = adam_step;
  return absl::OkStatus();
}

absl::Status DistributedOptimizer::Save(const std::string& path) const {
  try {
    torch::serialize::OutputArchive archive;
    archive.write("moerl_distributed/step", at::tensor({step_}, at::TensorOptions().dtype(at::kLong)));
    std::vector<int64_t> layout_bytes(layout_.begin(), layout_.end());
    archive.write("moerl_distributed/layout", at::tensor(layout_bytes, at::TensorOptions().dtype(at::kLong)));
    for (size_t l = 0; l < lists_.size(); ++l) {
      for (size_t k = 0; k < lists_[l].buckets.size(); ++k) {
        const Bucket& b = lists_[l].buckets[k];
        archive.write(Key(l, k, "exp_avg"), b.exp_avg);
        archive.write(Key(l, k, "exp_avg_sq"), b.exp_avg_sq);
        if (b.master.defined()) archive.write(Key(l, k, "master"), b.master);
      }
    }
    archive.save_to(path);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot save optimizer shards to '", path, "': ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status DistributedOptimizer::Load(const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    at::Tensor step, layout;
    if (!archive.try_read("moerl_distributed/step", step) || !archive.try_read("moerl_distributed/layout", layout)) {
      return absl::DataLossError(absl::StrCat("'", path,
                                              "' holds no distributed-optimizer shards (a checkpoint of another "
                                              "optimizer: set actor.megatron.ddp.use_distributed_optimizer as it "
                                              "was written)"));
    }
    std::string saved;
    for (int64_t i = 0; i < layout.numel(); ++i) saved += static_cast<char>(layout[i].item<int64_t>());
    if (saved != layout_) {
      return absl::DataLossError(absl::StrCat("optimizer shards '", path, "' were written for \"", saved,
                                              "\", this rank holds \"", layout_,
                                              "\"; resume under the layout that wrote them"));
    }
    at::NoGradGuard no_grad;
    for (size_t l = 0; l < lists_.size(); ++l) {
      for (size_t k = 0; k < lists_[l].buckets.size(); ++k) {
        Bucket& b = lists_[l].buckets[k];
        for (auto [name, target] : {std::pair<const char*, at::Tensor*>{"exp_avg", &b.exp_avg},
                                    {"exp_avg_sq", &b.exp_avg_sq},
                                    {"master", &b.master}}) {
          if (!target->defined()) continue;
          at::Tensor t;
          archive.read(Key(l, k, name), t);
          target->copy_(t);
        }
      }
    }
    step_ = step.item<int64_t>();
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("cannot load optimizer shards from '", path, "': ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace moerl
