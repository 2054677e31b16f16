#include "trainer/pipeline_train.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/tensor.h>

#include <utility>

#include "common/logging.h"
#include "trainer/parallel/pipeline_schedule.h"

namespace moerl {
namespace {

// Tags of the forward-only pass (Run1F1B uses 1-5).
constexpr int kTagRows = 11;
constexpr int kTagActivation = 12;

at::Device ModelDevice(Qwen3Model& model) { return model.parameters().front().device(); }

// Qwen3Model::dtype() reads the embedding, which a later stage may not hold.
at::ScalarType ModelDtype(Qwen3Model& model) { return model.parameters().front().scalar_type(); }

}  // namespace

std::vector<PolicyOutput> PipelinePolicyForward(Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                                                const std::vector<IndexList>& micros,
                                                const PolicyForwardOptions& options, const ProcessGroup& pp) {
  at::NoGradGuard no_grad;
  const int p = pp.size(), s = pp.rank();
  const bool first = s == 0, last = s == p - 1;
  MOERL_CHECK(first == model.is_first_stage() && last == model.is_last_stage())
      << "pp rank " << s << " of " << p << " holds layers from " << model.first_layer();
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  const auto act = at::TensorOptions().dtype(ModelDtype(model)).device(ModelDevice(model));
  const int64_t hidden = model.config().hidden_size;
  std::vector<PolicyOutput> outs(micros.size());
  std::vector<ProcessGroup::PendingSend> sends;
  int64_t total = 0;  // completion tokens of all micro-batches
  for (size_t m = 0; m < micros.size(); ++m) {
    const PolicyBatch batch = PackPolicyBatch(model, seqs, micros[m], options);
    at::Tensor input_td;
    if (!first) {
      at::Tensor rows = at::empty({1}, i64);
      pp.Recv(rows, s - 1, kTagRows);
      input_td = at::empty({rows.item<int64_t>(), hidden}, act);  // [T (/tp), D]
      pp.Recv(input_td, s - 1, kTagActivation);
    }
    ModelOutput fwd = model.Forward(batch.input, input_td);
    if (last) {
      outs[m] = ScorePolicyBatch(model, batch, fwd.hidden_td, options);
    } else {
      sends.push_back(pp.Send(at::tensor({fwd.hidden_td.size(0)}, i64), s + 1, kTagRows));
      sends.push_back(pp.Send(fwd.hidden_td.to(act).contiguous(), s + 1, kTagActivation));
      outs[m].output_lens = batch.output_lens;
      outs[m].num_tokens = batch.num_tokens;
    }
    for (int64_t n : batch.output_lens) total += n;
  }
  for (ProcessGroup::PendingSend& send : sends) send.Wait();
  if (p > 1) {
    // The last stage's log-probs to every stage, in micro-batch order.
    at::Tensor all_n;
    if (last) {
      std::vector<at::Tensor> parts;
      for (const PolicyOutput& o : outs) parts.push_back(o.logp_n.to(at::kFloat));
      all_n = parts.empty() ? at::empty({0}, at::kFloat) : at::cat(parts).contiguous();
    } else {
      all_n = at::empty({total}, at::TensorOptions().dtype(at::kFloat).device(ModelDevice(model)));
    }
    MOERL_CHECK(all_n.numel() == total);
    pp.Broadcast(all_n, p - 1);
    int64_t offset = 0;
    for (PolicyOutput& o : outs) {
      int64_t n = 0;
      for (int64_t len : o.output_lens) n += len;
      o.logp_n = all_n.narrow(0, offset, n);
      offset += n;
    }
  }
  return outs;
}

BatchPolicyForward PipelineBatchForward(const ProcessGroup& pp) {
  return [&pp](Qwen3Model& model, const std::vector<TrainSequence>& seqs, const std::vector<IndexList>& micros,
               const PolicyForwardOptions& options) {
    return PipelinePolicyForward(model, seqs, micros, options, pp);
  };
}

std::vector<double> PipelineMinibatchGradients(Qwen3Model& model, Objective& objective,
                                               const std::vector<TrainSequence>& seqs,
                                               const std::vector<IndexList>& micros,
                                               const std::vector<double>& router_scales, double denominator,
                                               double aux_coef, double z_coef, const ProcessGroup& pp,
                                               StatsRecorder* stats) {
  MOERL_CHECK(router_scales.size() == micros.size() && !micros.empty());
  const PolicyForwardOptions forward = objective.ForwardOptions();
  std::vector<PolicyBatch> batches;
  for (const IndexList& micro : micros) batches.push_back(PackPolicyBatch(model, seqs, micro, forward));
  std::vector<double> aux(micros.size(), 0.0);
  Qwen3StageLoss loss;
  loss.input_of = [&batches](int64_t m) { return batches[m].input; };
  loss.loss_of = [&](int64_t m, const ModelInput&, const at::Tensor& hidden_td) {
    const PolicyOutput out = ScorePolicyBatch(model, batches[m], hidden_td, forward);
    return objective.MicroBatchLoss(seqs, micros[m], out, denominator, stats);
  };
  loss.router_scale = [&router_scales](int64_t m) { return router_scales[m]; };
  loss.aux_coef = aux_coef;
  loss.z_coef = z_coef;
  loss.on_aux_share = [&aux](int64_t m, double share) { aux[m] = share; };
  PipelineOptions o;
  o.num_micro_batches = static_cast<int64_t>(micros.size());
  o.hidden_size = model.config().hidden_size;
  o.dtype = ModelDtype(model);
  o.device = ModelDevice(model);
  o.stats_size = RouterStatsSize(model.config());
  Run1F1B(pp, o, Qwen3StageForward(model, std::move(loss)));
  return aux;
}

}  // namespace moerl
