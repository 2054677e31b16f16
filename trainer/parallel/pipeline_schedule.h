// Pipeline parallelism: the non-interleaved 1F1B schedule (Megatron's
// forward_backward_pipelining_without_interleaving) over the micro-batches of
// one minibatch, with point-to-point activations and gradients between
// adjacent stages of the pp group.
//
// Stage s of p, m micro-batches: warm-up min(p - s - 1, m) forwards, then
// one forward / one backward until every forward is done, then the
// remaining backwards. Stage s receives micro-batch i's input [T_i, D] from
// stage s - 1 (its row count first: packed micro-batches differ in length),
// runs its layers, sends the output to s + 1; the backward receives the
// output's gradient from s + 1, drives autograd with
// torch::autograd::backward(output, grad) (plus the stage's own loss terms)
// and sends the input's gradient to s - 1. The last stage calls the loss
// (the micro-batch's share of the minibatch objective, so the global token
// mean is kept) and starts the backward from it.
//
// Statistics that must be summed over the stages before a loss term can be
// built (the MoE aux loss couples every MoE layer through the router
// counts) travel with the activations: each stage adds its own to the
// received sum, the last stage's sum (the total) travels back with the
// gradients, and `deferred_loss(total)` adds that stage's term at backward.
//
//   PipelineOptions o{.num_micro_batches = 4, .hidden_size = D, ...};
//   StageForwardFn fwd = Qwen3StageForward(model, inputs, loss_of, router);
//   PipelineResult r = Run1F1B(state.group(RankGroupKind::kPipeline), o, fwd);
//   // gradients accumulated in the stage's parameters; r.loss is this
//   // stage's share (sum it over pp for the minibatch loss)
//
// Every rank of a pp group calls Run1F1B with the same options; the ranks
// of one stage (tp, dp, ep) run the same order of forwards and backwards,
// so the collectives inside the model match. Deterministic: the order is a
// function of (p, s, m) only. On one stage (p = 1) it is forward, backward
// per micro-batch. Throws CollectiveError when a peer fails.
//
// Sends are asynchronous (waited at the end), receives blocking: over Gloo
// that cannot deadlock. NCCL would need the steady-state send/recv pairs
// batched (Megatron's send_forward_recv_backward); not done yet.
#ifndef MOERL_TRAINER_PARALLEL_PIPELINE_SCHEDULE_H_
#define MOERL_TRAINER_PARALLEL_PIPELINE_SCHEDULE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "trainer/model/model.h"
#include "trainer/parallel/process_groups.h"

namespace moerl {

// What one stage's forward of one micro-batch returns.
struct StageForward {
  at::Tensor output_td;  // all but the last stage: sent on, with its graph
  at::Tensor loss;       // scalar share to backpropagate here, or undefined
  at::Tensor stats;      // fp64 [stats_size]: received sum + this stage's (when stats_size > 0)
  // Optional: a loss term built from the pipeline's total `stats`, at backward.
  std::function<at::Tensor(const at::Tensor& total_stats)> deferred_loss;
};

// micro: 0-based index. input_td: the previous stage's output (undefined on
// the first stage; a leaf requiring grad otherwise). stats_in: the sum of
// the earlier stages' statistics (zeros on the first; undefined when
// stats_size is 0).
using StageForwardFn =
    std::function<StageForward(int64_t micro, const at::Tensor& input_td, const at::Tensor& stats_in)>;

struct PipelineOptions {
  int64_t num_micro_batches = 1;
  int64_t hidden_size = 0;  // D of the activations
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  int64_t stats_size = 0;  // elements of StageForward::stats; 0: none travel
};

struct PipelineEvent {
  enum class Kind { kForward, kBackward };
  Kind kind;
  int64_t micro;
  std::string ToString() const;  // "F0", "B3"
};

struct PipelineResult {
  double loss = 0;  // this stage's loss terms summed over the micro-batches
  std::vector<PipelineEvent> order;
};

PipelineResult Run1F1B(const ProcessGroup& pp, const PipelineOptions& options, const StageForwardFn& forward);

// The order Run1F1B runs on `stage` of `num_stages` (no communication).
std::vector<PipelineEvent> OneFOneBOrder(int num_stages, int stage, int64_t num_micro_batches);

// Qwen3Model (a stage after KeepStage, or the whole model) as a
// StageForwardFn. The last stage's loss is loss_of(micro, input,
// hidden_td); every stage adds its MoE layers' router terms,
// (aux_coef * aux + z_coef * z) * router_scale(micro), the aux share
// deferred until the pipeline's router counts are known. stats_size for
// Run1F1B: RouterStatsSize(config).
struct Qwen3StageLoss {
  std::function<ModelInput(int64_t micro)> input_of;
  std::function<at::Tensor(int64_t micro, const ModelInput& input, const at::Tensor& hidden_td)> loss_of;
  std::function<double(int64_t micro)> router_scale;  // e.g. the micro-batch's share of the minibatch's tokens
  double aux_coef = 0;
  double z_coef = 0;
  // Optional: told each micro-batch's aux share of this stage (without
  // coefficient or router_scale) at its backward, e.g. for statistics.
  std::function<void(int64_t micro, double aux_share)> on_aux_share;
};
StageForwardFn Qwen3StageForward(Qwen3Model& model, Qwen3StageLoss loss);
int64_t RouterStatsSize(const ModelConfig& config);

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_PIPELINE_SCHEDULE_H_
