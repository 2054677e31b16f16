#include "trainer/optimizer.h"

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace moerl {

TrainOptimizer::TrainOptimizer(std::vector<at::Tensor> params, const OptimizerSettings& settings,
                               LrSchedule schedule)
    : params_(std::move(params)), settings_(settings), schedule_(std::move(schedule)) {
  torch::optim::AdamWOptions options(settings_.lr);
  options.betas({settings_.beta1, settings_.beta2}).eps(settings_.eps).weight_decay(settings_.weight_decay);
  adamw_ = std::make_unique<torch::optim::AdamW>(params_, options);
}

TrainOptimizer::~TrainOptimizer() = default;

void TrainOptimizer::ZeroGrad() { adamw_->zero_grad(/*set_to_none=*/true); }

double TrainOptimizer::LearningRate(int64_t train_step) const {
  return settings_.lr * schedule_.Multiplier(train_step);
}

OptimizerStepResult TrainOptimizer::Step(int64_t train_step) {
  return Step(train_step, [this](double max_norm) {
    std::vector<at::Tensor> with_grad;
    for (const at::Tensor& p : params_) {
      if (p.grad().defined()) with_grad.push_back(p);
    }
    return with_grad.empty() ? 0.0 : torch::nn::utils::clip_grad_norm_(with_grad, max_norm);
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
  adamw_->step();
  result.updated = true;
  return result;
}

absl::Status TrainOptimizer::Save(const std::string& path) const {
  try {
    torch::save(*adamw_, path);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot save optimizer state to '", path, "': ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status TrainOptimizer::Load(const std::string& path) {
  try {
    torch::load(*adamw_, path);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("cannot load optimizer state from '", path, "': ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace moerl
