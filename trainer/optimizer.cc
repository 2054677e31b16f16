#include "trainer/optimizer.h"

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace moerl {
namespace {

// Archive key of master copy i.
std::string MasterKey(size_t i) { return absl::StrCat("moerl_master_weight_", i); }

}  // namespace

TrainOptimizer::TrainOptimizer(std::vector<at::Tensor> params, const OptimizerSettings& settings,
                               LrSchedule schedule)
    : params_(std::move(params)), settings_(settings), schedule_(std::move(schedule)) {
  bool low_precision = false;
  for (const at::Tensor& p : params_) low_precision |= p.scalar_type() != at::kFloat;
  if (low_precision) {
    at::NoGradGuard no_grad;
    for (const at::Tensor& p : params_) masters_.push_back(p.detach().to(at::kFloat).clone().set_requires_grad(true));
  }
  torch::optim::AdamWOptions options(settings_.lr);
  options.betas({settings_.beta1, settings_.beta2}).eps(settings_.eps).weight_decay(settings_.weight_decay);
  adamw_ = std::make_unique<torch::optim::AdamW>(masters_.empty() ? params_ : masters_, options);
}

TrainOptimizer::TrainOptimizer(std::vector<at::Tensor> params, const OptimizerSettings& settings,
                               LrSchedule schedule, NoState)
    : params_(std::move(params)), settings_(settings), schedule_(std::move(schedule)) {}

TrainOptimizer::~TrainOptimizer() = default;

void TrainOptimizer::ZeroGrad() {
  adamw_->zero_grad(/*set_to_none=*/true);
  if (!masters_.empty()) {
    for (at::Tensor& p : params_) p.mutable_grad() = at::Tensor();
  }
}

double TrainOptimizer::LearningRate(int64_t train_step) const {
  return settings_.lr * schedule_.Multiplier(train_step);
}

OptimizerStepResult TrainOptimizer::Step(int64_t train_step) {
  return Step(train_step, [this](double max_norm) {
    std::vector<at::Tensor> with_grad;
    for (const at::Tensor& p : params_) {
      if (p.grad().defined()) with_grad.push_back(p);
    }
    if (with_grad.empty()) return 0.0;
    if (masters_.empty()) return torch::nn::utils::clip_grad_norm_(with_grad, max_norm);
    // Low-precision gradients: the norm summed in fp32, then
    // clip_grad_norm_'s rule (scale by max_norm / (norm + 1e-6) when < 1).
    double sum_sq = 0;
    for (const at::Tensor& p : with_grad) sum_sq += p.grad().to(at::kFloat).pow(2).sum().item<double>();
    const double norm = std::sqrt(sum_sq);
    const double coef = max_norm / (norm + 1e-6);
    if (std::isfinite(norm) && coef < 1) {
      for (const at::Tensor& p : with_grad) p.grad().mul_(coef);
    }
    return norm;
  });
}

OptimizerStepResult TrainOptimizer::Step(int64_t train_step, const std::function<double(double)>& clip) {
  OptimizerStepResult result;
  result.lr = LearningRate(train_step);
  const double max_norm = settings_.gradient_clipping > 0 ? settings_.gradient_clipping
                                                          : std::numeric_limits<double>::infinity();
  result.grad_norm = clip(max_norm);
  if (!std::isfinite(result.grad_norm)) {
    ZeroGrad();  // AReaL: a non-finite norm skips the update
    return result;
  }
  for (auto& group : adamw_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(result.lr);
  }
  if (masters_.empty()) {
    adamw_->step();
  } else {
    // The update in fp32 on the master copies; the model gets them rounded.
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      const at::Tensor& g = params_[i].grad();
      masters_[i].mutable_grad() = g.defined() ? g.to(at::kFloat) : at::Tensor();
    }
    adamw_->step();
    for (size_t i = 0; i < params_.size(); ++i) params_[i].copy_(masters_[i]);
  }
  result.updated = true;
  return result;
}

std::vector<TrainOptimizer::ParameterOptimizerState> TrainOptimizer::ExportParameterStates() const {
  at::NoGradGuard no_grad;
  const std::vector<at::Tensor>& stepped = masters_.empty() ? params_ : masters_;
  std::vector<ParameterOptimizerState> out(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = stepped[i];
    auto it = adamw_->state().find(p.unsafeGetTensorImpl());
    if (it != adamw_->state().end()) {
      const auto& state = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      out[i].exp_avg = state.exp_avg().detach().clone();
      out[i].exp_avg_sq = state.exp_avg_sq().detach().clone();
    } else {
      out[i].exp_avg = at::zeros_like(p.detach());
      out[i].exp_avg_sq = at::zeros_like(p.detach());
    }
    if (!masters_.empty()) out[i].master = masters_[i].detach().clone();
  }
  return out;
}

absl::Status TrainOptimizer::ImportParameterStates(const std::vector<ParameterOptimizerState>& states,
                                                   int64_t adam_step) {
  if (states.size() != params_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer state for ", states.size(), " parameters, the model has ",
                                                   params_.size()));
  }
  if (adam_step < 0) return absl::InvalidArgumentError(absl::StrCat("adam step ", adam_step, " < 0"));
  const std::vector<at::Tensor>& stepped = masters_.empty() ? params_ : masters_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParameterOptimizerState& s = states[i];
    for (const at::Tensor* t : {&s.exp_avg, &s.exp_avg_sq, &s.master}) {
      if (t == &s.master && !t->defined()) continue;
      if (!t->defined() || !t->sizes().equals(params_[i].sizes())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "optimizer state of parameter ", i, ": ", t == &s.exp_avg ? "exp_avg" : t == &s.exp_avg_sq ? "exp_avg_sq" : "master",
            " has shape ", t->defined() ? c10::str(t->sizes()) : "none", ", the parameter ", c10::str(params_[i].sizes())));
      }
    }
  }
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < masters_.size(); ++i) {
    masters_[i].copy_(states[i].master.defined() ? states[i].master : params_[i]);
  }
  auto& table = adamw_->state();
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = stepped[i];
    table.erase(p.unsafeGetTensorImpl());
    if (adam_step == 0) continue;
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(adam_step);
    state->exp_avg(states[i].exp_avg.detach().to(p.options()).clone());
    state->exp_avg_sq(states[i].exp_avg_sq.detach().to(p.options()).clone());
    table[p.unsafeGetTensorImpl()] = std::move(state);
  }
  return absl::OkStatus();
}

int64_t TrainOptimizer::adam_step() const {
  int64_t step = 0;
  for (const auto& [key, state] : adamw_->state()) {
    step = std::max(step, static_cast<const torch::optim::AdamWParamState&>(*state).step());
  }
  return step;
}

absl::Status TrainOptimizer::Save(const std::string& path) const {
  try {
    torch::serialize::OutputArchive archive;
    adamw_->save(archive);
    for (size_t i = 0; i < masters_.size(); ++i) archive.write(MasterKey(i), masters_[i].detach());
    archive.save_to(path);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot save optimizer state to '", path, "': ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status TrainOptimizer::Load(const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    // The moments go to the parameters' device, whichever device saved them.
    archive.load_from(path, params_.empty() ? c10::Device(c10::kCPU) : params_[0].device());
    adamw_->load(archive);
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < masters_.size(); ++i) {
      at::Tensor saved;
      if (archive.try_read(MasterKey(i), saved)) {
        if (!saved.sizes().equals(masters_[i].sizes())) {
          return absl::DataLossError(absl::StrCat("optimizer state '", path, "': master weight ", i, " has shape ",
                                                  c10::str(saved.sizes()), ", the model ",
                                                  c10::str(masters_[i].sizes())));
        }
        masters_[i].copy_(saved);
      } else {
        // A checkpoint from before master weights: start them from the model.
        masters_[i].copy_(params_[i]);
      }
    }
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("cannot load optimizer state from '", path, "': ", e.what()));
  }
  return absl::OkStatus();
}

int64_t TrainOptimizer::StateBytes() const {
  int64_t bytes = 0;
  for (const at::Tensor& m : masters_) bytes += m.numel() * static_cast<int64_t>(m.element_size());
  if (!adamw_) return bytes;
  for (const auto& [key, state] : adamw_->state()) {
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*state);
    for (const at::Tensor& t : {s.exp_avg(), s.exp_avg_sq(), s.max_exp_avg_sq()}) {
      if (t.defined()) bytes += t.numel() * static_cast<int64_t>(t.element_size());
    }
  }
  return bytes;
}

}  // namespace moerl
