#include "trainer/parallel/pipeline_schedule.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "trainer/model/router_losses.h"

namespace moerl {
namespace {

// One tag per kind of message; both sides send and receive the kinds of one
// step in the same order (rows, activation, stats; totals, gradient).
constexpr int kTagRows = 1;
constexpr int kTagActivation = 2;
constexpr int kTagStats = 3;
constexpr int kTagTotals = 4;
constexpr int kTagGradient = 5;

struct InFlight {
  at::Tensor input_td;  // leaf received from the previous stage (undefined on the first)
  StageForward forward;
};

}  // namespace

std::string PipelineEvent::ToString() const {
  return absl::StrCat(kind == Kind::kForward ? "F" : "B", micro);
}

std::vector<PipelineEvent> OneFOneBOrder(int num_stages, int stage, int64_t num_micro_batches) {
  MOERL_CHECK(num_stages >= 1 && stage >= 0 && stage < num_stages && num_micro_batches >= 1);
  const int64_t warmup = std::min<int64_t>(num_stages - stage - 1, num_micro_batches);
  std::vector<PipelineEvent> order;
  int64_t forwards = 0, backwards = 0;
  while (forwards < warmup) order.push_back({PipelineEvent::Kind::kForward, forwards++});
  while (forwards < num_micro_batches) {
    order.push_back({PipelineEvent::Kind::kForward, forwards++});
    order.push_back({PipelineEvent::Kind::kBackward, backwards++});
  }
  while (backwards < num_micro_batches) order.push_back({PipelineEvent::Kind::kBackward, backwards++});
  return order;
}

PipelineResult Run1F1B(const ProcessGroup& pp, const PipelineOptions& options, const StageForwardFn& forward) {
  const int p = pp.size(), s = pp.rank();
  const bool first = s == 0, last = s == p - 1;
  const int64_t stats_size = options.stats_size;
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const auto act = at::TensorOptions().dtype(options.dtype).device(options.device);
  PipelineResult result;
  result.order = OneFOneBOrder(p, s, options.num_micro_batches);
  std::map<int64_t, InFlight> in_flight;
  std::vector<ProcessGroup::PendingSend> sends;
  for (const PipelineEvent& event : result.order) {
    const int64_t micro = event.micro;
    if (event.kind == PipelineEvent::Kind::kForward) {
      InFlight f;
      at::Tensor stats_in;
      if (!first) {
        at::Tensor rows = at::empty({1}, i64);
        pp.Recv(rows, s - 1, kTagRows);
        f.input_td = at::empty({rows.item<int64_t>(), options.hidden_size}, act);  // [T, D]
        pp.Recv(f.input_td, s - 1, kTagActivation);
        f.input_td.requires_grad_(true);
        if (stats_size > 0) {
          stats_in = at::empty({stats_size}, f64);
          pp.Recv(stats_in, s - 1, kTagStats);
        }
      } else if (stats_size > 0) {
        stats_in = at::zeros({stats_size}, f64);
      }
      f.forward = forward(micro, f.input_td, stats_in);
      if (f.forward.loss.defined()) result.loss += f.forward.loss.item<double>();
      if (!last) {
        const at::Tensor& out_td = f.forward.output_td;
        MOERL_CHECK(out_td.defined() && out_td.dim() == 2 && out_td.size(1) == options.hidden_size)
            << "stage " << s << " must return a [T, " << options.hidden_size << "] output";
        sends.push_back(pp.Send(at::tensor({out_td.size(0)}, i64), s + 1, kTagRows));
        sends.push_back(pp.Send(out_td.detach().to(act).contiguous(), s + 1, kTagActivation));
        if (stats_size > 0) {
          MOERL_CHECK(f.forward.stats.defined() && f.forward.stats.numel() == stats_size);
          sends.push_back(pp.Send(f.forward.stats.to(at::kDouble).contiguous(), s + 1, kTagStats));
        }
      }
      in_flight.emplace(micro, std::move(f));
      continue;
    }
    auto it = in_flight.find(micro);
    MOERL_CHECK(it != in_flight.end());
    InFlight& f = it->second;
    at::Tensor totals;
    if (stats_size > 0) {
      if (last) {
        totals = f.forward.stats.to(at::kDouble).contiguous();
      } else {
        totals = at::empty({stats_size}, f64);
        pp.Recv(totals, s + 1, kTagTotals);
      }
    }
    std::vector<at::Tensor> roots, grads;
    if (!last) {
      at::Tensor grad_td = at::empty(f.forward.output_td.sizes(), act);
      pp.Recv(grad_td, s + 1, kTagGradient);
      roots.push_back(f.forward.output_td);
      grads.push_back(grad_td.to(f.forward.output_td.scalar_type()));
    }
    at::Tensor loss = f.forward.loss;
    if (f.forward.deferred_loss) {
      MOERL_CHECK(totals.defined()) << "a deferred loss needs PipelineOptions::stats_size";
      at::Tensor extra = f.forward.deferred_loss(totals);
      if (extra.defined()) {
        result.loss += extra.item<double>();
        loss = loss.defined() ? loss + extra : extra;
      }
    }
    if (loss.defined() && loss.requires_grad()) {
      roots.push_back(loss);
      grads.push_back(at::ones_like(loss));
    }
    MOERL_CHECK(!roots.empty()) << "stage " << s << " has nothing to backpropagate for micro-batch " << micro;
    torch::autograd::backward(roots, grads);
    if (!first) {
      at::Tensor grad_in = f.input_td.grad();
      if (!grad_in.defined()) grad_in = at::zeros_like(f.input_td);
      if (stats_size > 0) sends.push_back(pp.Send(totals, s - 1, kTagTotals));
      sends.push_back(pp.Send(grad_in.to(act).contiguous(), s - 1, kTagGradient));
    }
    in_flight.erase(it);
  }
  for (ProcessGroup::PendingSend& send : sends) send.Wait();
  return result;
}

int64_t RouterStatsSize(const ModelConfig& config) {
  return config.HasMoeLayers() ? config.num_experts + 2 : 0;
}

StageForwardFn Qwen3StageForward(Qwen3Model& model, Qwen3StageLoss loss) {
  return [&model, loss = std::move(loss)](int64_t micro, const at::Tensor& input_td,
                                          const at::Tensor& stats_in) -> StageForward {
    ModelInput input = loss.input_of(micro);
    ModelOutput out = model.Forward(input, input_td);
    StageForward r;
    at::Tensor total;
    auto add = [&total](const at::Tensor& t) { total = total.defined() ? total + t : t; };
    if (model.is_last_stage()) {
      add(loss.loss_of(micro, input, out.hidden_td));
    } else {
      r.output_td = out.hidden_td;
    }
    const double scale = loss.router_scale ? loss.router_scale(micro) : 1.0;
    if (out.z_loss.defined() && loss.z_coef != 0.0) add(out.z_loss * (loss.z_coef * scale));
    if (out.aux_loss.defined() && loss.aux_coef != 0.0) add(out.aux_loss * (loss.aux_coef * scale));
    MOERL_CHECK(!out.aux_prob_sum_e.defined() || stats_in.defined())
        << "a pipeline stage with MoE layers needs PipelineOptions::stats_size = RouterStatsSize(config)";
    if (stats_in.defined()) {
      r.stats = out.router_stats.defined() ? stats_in + out.router_stats : stats_in;
      if (out.aux_prob_sum_e.defined() && (loss.aux_coef != 0.0 || loss.on_aux_share)) {
        r.deferred_loss = [prob_sum_e = out.aux_prob_sum_e, coef = loss.aux_coef * scale,
                           observe = loss.on_aux_share, micro](const at::Tensor& totals) {
          at::Tensor share = RouterAuxShare(prob_sum_e, totals);
          if (observe) observe(micro, share.item<double>());
          return coef != 0.0 ? share * coef : at::Tensor();
        };
      }
    }
    r.loss = total;
    return r;
  };
}

}  // namespace moerl
