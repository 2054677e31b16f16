#include "trainer/train_step.h"

#include <ATen/ops/where.h>
#include <ATen/ops/full_like.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/pipeline_train.h"

namespace moerl {

void RecordMaskedStat(StatsRecorder* stats, const std::string& name, const at::Tensor& values_n,
                      const at::Tensor& mask_n) {
  at::Tensor v = values_n.detach().to(at::kDouble);
  at::Tensor m = mask_n.detach().to(at::kBool);
  const double count = m.sum().item<double>();
  if (count <= 0) return;
  const double inf = std::numeric_limits<double>::infinity();
  const double sum = at::where(m, v, at::zeros_like(v)).sum().item<double>();
  const double min = at::where(m, v, at::full_like(v, inf)).min().item<double>();
  const double max = at::where(m, v, at::full_like(v, -inf)).max().item<double>();
  stats->Stat(name, sum, count, min, max);
}

std::vector<IndexList> SplitAcrossDataShards(const std::vector<TrainSequence>& seqs, const IndexList& mini,
                                             int64_t n) {
  std::vector<IndexList> groups;
  for (size_t i = 0; i < mini.size(); ++i) {
    const std::string& id = seqs[mini[i]].group_id;
    if (i == 0 || id.empty() || id != seqs[mini[i - 1]].group_id) groups.emplace_back();
    groups.back().push_back(mini[i]);
  }
  if (static_cast<int64_t>(groups.size()) < n) {
    // Fewer groups than shards: sequences instead, so that no shard idles
    // (advantages are computed on the whole batch, so nothing depends on a
    // group staying on one rank).
    groups.clear();
    for (int64_t i : mini) groups.push_back({i});
  }
  std::vector<int64_t> tokens(groups.size(), 0);
  for (size_t g = 0; g < groups.size(); ++g) {
    for (int64_t i : groups[g]) tokens[g] += seqs[i].Length();
  }
  std::vector<size_t> order(groups.size());
  for (size_t g = 0; g < order.size(); ++g) order[g] = g;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tokens[a] > tokens[b]; });
  std::vector<IndexList> shards(static_cast<size_t>(n));
  std::vector<int64_t> load(static_cast<size_t>(n), 0);
  for (size_t g : order) {
    const size_t s = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[s] += tokens[g];
    shards[s].insert(shards[s].end(), groups[g].begin(), groups[g].end());
  }
  for (IndexList& s : shards) std::sort(s.begin(), s.end());
  return shards;
}

namespace {

// Merges `local` over `group` into *stats: every rank's entries are
// gathered (a sum of zero-padded rows is exact), keys in sorted order.
void MergeStatsOverGroup(const ProcessGroup& group, const StatsRecorder& local, StatsRecorder* stats) {
  const std::vector<StatsRecorder::Entry> mine = local.Entries();
  if (group.size() == 1) {
    for (const StatsRecorder::Entry& e : mine) stats->Merge(e);
    return;
  }
  // Keys: gather every rank's names as bytes.
  std::string names;
  for (const StatsRecorder::Entry& e : mine) names += e.key + '\n';
  at::Tensor len = at::zeros({group.size()}, at::kLong);
  len[group.rank()] = static_cast<int64_t>(names.size());
  group.AllReduceSum(len);
  const int64_t max_len = len.max().item<int64_t>();
  at::Tensor bytes = at::zeros({group.size(), std::max<int64_t>(max_len, 1)}, at::kInt);
  for (size_t i = 0; i < names.size(); ++i) bytes[group.rank()][static_cast<int64_t>(i)] = static_cast<int>(names[i]);
  group.AllReduceSum(bytes);
  std::vector<std::vector<std::string>> keys(static_cast<size_t>(group.size()));
  for (int r = 0; r < group.size(); ++r) {
    std::string text;
    for (int64_t i = 0; i < len[r].item<int64_t>(); ++i) text += static_cast<char>(bytes[r][i].item<int>());
    size_t at = 0;
    while (at < text.size()) {
      const size_t end = text.find('\n', at);
      keys[r].push_back(text.substr(at, end - at));
      at = end + 1;
    }
  }
  // Values: [ranks, max entries, 4].
  size_t max_entries = 1;
  for (const auto& k : keys) max_entries = std::max(max_entries, k.size());
  at::Tensor values = at::zeros({group.size(), static_cast<int64_t>(max_entries), 4}, at::kDouble);
  auto acc = values.accessor<double, 3>();
  for (size_t i = 0; i < mine.size(); ++i) {
    acc[group.rank()][i][0] = mine[i].sum;
    acc[group.rank()][i][1] = mine[i].count;
    acc[group.rank()][i][2] = mine[i].min;
    acc[group.rank()][i][3] = mine[i].max;
  }
  group.AllReduceSum(values);
  auto all = values.accessor<double, 3>();
  for (int r = 0; r < group.size(); ++r) {
    for (size_t i = 0; i < keys[r].size(); ++i) {
      stats->Merge({keys[r][i], all[r][i][0], all[r][i][1], all[r][i][2], all[r][i][3]});
    }
  }
}

}  // namespace

int64_t AccumulateMinibatchGradients(Qwen3Model& model, Objective& objective,
                                     const std::vector<TrainSequence>& seqs, const IndexList& mini,
                                     const TrainStepOptions& options, StatsRecorder* stats,
                                     const ParallelState* parallel) {
  const std::vector<int64_t> lengths = SequenceLengths(seqs);
  const double aux_coef = options.aux_loss_coef.value_or(model.config().router_aux_loss_coef);
  const double z_coef = options.z_loss_coef.value_or(model.config().router_z_loss_coef);
  const PolicyForwardOptions forward = objective.ForwardOptions();
  // Every shard's micro-batches: rank r runs shard_micros[r]; the routers'
  // losses of forward k cover micro-batch k of all shards together.
  const int64_t n_shards = parallel ? parallel->num_data_shards() : 1;
  const std::vector<IndexList> shards =
      parallel ? SplitAcrossDataShards(seqs, mini, n_shards) : std::vector<IndexList>{mini};
  std::vector<std::vector<IndexList>> shard_micros;
  size_t n_forwards = 0;
  for (const IndexList& shard : shards) {
    shard_micros.push_back(shard.empty() ? std::vector<IndexList>{}
                                         : PackMicroBatches(lengths, shard, options.max_tokens_per_mb));
    n_forwards = std::max(n_forwards, shard_micros.back().size());
  }
  const size_t me = parallel ? static_cast<size_t>(parallel->data_shard()) : 0;
  const bool pipeline = parallel && parallel->dims().pp > 1;
  if (parallel && (parallel->dims().ep > 1 || pipeline)) {
    // A forward of no tokens does not yet take part in the expert
    // all-to-all's backward (the model's empty path keeps no graph to it),
    // nor in a pipeline schedule.
    for (size_t r = 0; r < shard_micros.size(); ++r) {
      if (shard_micros[r].size() != n_forwards) {
        throw std::invalid_argument(absl::StrCat(
            "data shard ", r, " has ", shard_micros[r].size(), " micro-batches and another ", n_forwards, "; under ",
            pipeline ? "pipeline" : "expert",
            " parallelism every shard needs the same number: raise actor.mb_spec.max_tokens_per_mb "
            "(or unset it) or give each minibatch at least one sequence per data shard"));
      }
    }
  }
  const std::vector<IndexList>& micros = shard_micros[me];
  double denominator = static_cast<double>(objective.LossTokens(seqs, shards[me]));
  // Summed over dp, not dp-cp: the cp ranks of a shard all hold its whole
  // token loss (context_parallel.h), each with the gradient of its rows.
  if (parallel) denominator = SumOverGroup(*parallel, RankGroupKind::kData, denominator);
  // The micro-batches' statistics, merged over the shards at the end.
  StatsRecorder local;
  std::vector<double> aux_shares;
  // The routers' losses weigh forward k by its share of the loss tokens.
  auto router_share = [&](size_t k) {
    double tokens = 0;
    for (const std::vector<IndexList>& m : shard_micros) {
      if (k < m.size()) tokens += static_cast<double>(objective.LossTokens(seqs, m[k]));
    }
    return denominator > 0 ? tokens / denominator : 0.0;
  };
  if (pipeline) {
    std::vector<double> shares;
    for (size_t k = 0; k < n_forwards; ++k) shares.push_back(router_share(k));
    const std::vector<double> aux =
        PipelineMinibatchGradients(model, objective, seqs, micros, shares, denominator > 0 ? denominator : 1.0,
                                   aux_coef, z_coef, parallel->group(RankGroupKind::kPipeline), &local);
    if (model.config().HasMoeLayers() && (aux_coef != 0 || z_coef != 0)) {
      // Each stage's share of each forward's aux loss: summed over pp here,
      // over tp-dp-cp below.
      at::Tensor sum = at::tensor(aux, at::TensorOptions().dtype(at::kDouble));
      parallel->group(RankGroupKind::kPipeline).AllReduceSum(sum);
      for (int64_t k = 0; k < sum.size(0); ++k) aux_shares.push_back(sum[k].item<double>());
    }
  }
  const size_t own_forwards = pipeline ? 0 : n_forwards;  // the pipeline ran its forwards above
  for (size_t k = 0; k < own_forwards; ++k) {
    const IndexList micro = k < micros.size() ? micros[k] : IndexList{};
    PolicyOutput out;
    at::Tensor loss;
    if (!micro.empty()) {
      out = PolicyForward(model, seqs, micro, forward);
      loss = objective.MicroBatchLoss(seqs, micro, out, denominator > 0 ? denominator : 1.0, &local);
    } else {
      // A padding forward of no tokens: its zero loss hangs off the model's
      // output so that the backward runs the dispatcher's all-to-alls too.
      ModelOutput fwd = model.Forward(ModelInput::Pack({}));
      out.aux_loss = fwd.aux_loss;
      out.z_loss = fwd.z_loss;
      loss = fwd.hidden_td.sum() * 0.0;
    }
    if (out.aux_loss.defined() && (aux_coef != 0 || z_coef != 0)) {
      const double share = router_share(k);
      aux_shares.push_back(out.aux_loss.item<double>());
      loss = loss + out.aux_loss * (aux_coef * share) + out.z_loss * (z_coef * share);
    }
    loss.backward();
  }
  if (parallel && !aux_shares.empty()) {
    // Each rank's aux loss is its share (over tp-dp-cp, the ranks whose
    // router statistics are summed); the forward's value is their sum.
    at::Tensor sum = at::tensor(aux_shares, at::TensorOptions().dtype(at::kDouble));
    parallel->group(RankGroupKind::kTensorDataContext).AllReduceSum(sum);
    for (int64_t k = 0; k < sum.size(0); ++k) stats->Scalar("ppo_actor/update/aux_loss", sum[k].item<double>());
  } else {
    for (double a : aux_shares) stats->Scalar("ppo_actor/update/aux_loss", a);
  }
  if (pipeline) {
    // The objective's statistics exist on the last stage only. The tp and
    // cp ranks of a data shard record the same micro-batches' statistics
    // (context parallelism sums the log-probs over cp): merged over dp only.
    StatsRecorder shards;
    MergeStatsOverGroup(parallel->group(RankGroupKind::kData), local, &shards);
    MergeStatsOverGroup(parallel->group(RankGroupKind::kPipeline), shards, stats);
  } else if (parallel) {
    MergeStatsOverGroup(parallel->group(RankGroupKind::kData), local, stats);
  } else {
    for (const StatsRecorder::Entry& e : local.Entries()) stats->Merge(e);
  }
  return static_cast<int64_t>(n_forwards);
}

absl::Status RunTrainStep(Qwen3Model& model, TrainOptimizer& optimizer, Objective& objective,
                          const std::vector<TrainSequence>& seqs, const TrainStepOptions& options,
                          int64_t step, StatsRecorder* stats, const ParallelState* parallel) {
  try {
    if (parallel && parallel->dims().pp > 1) {
      objective.set_batch_forward(PipelineBatchForward(parallel->group(RankGroupKind::kPipeline)));
    }
    MOERL_RETURN_IF_ERROR(objective.Prepare(model, seqs, stats));
    std::unique_ptr<GradientReducer> reducer;
    if (parallel) reducer = std::make_unique<GradientReducer>(*parallel);
    for (const IndexList& mini : SplitMinibatches(SequenceLengths(seqs), options.ppo_n_minibatches)) {
      optimizer.ZeroGrad();
      const int64_t n_micro =
          AccumulateMinibatchGradients(model, objective, seqs, mini, options, stats, parallel);
      OptimizerStepResult r;
      if (parallel && !optimizer.ReducesGradients()) {
        MOERL_RETURN_IF_ERROR(reducer->Reduce(model));
        r = optimizer.Step(step, [&](double max_norm) { return ClipGradNorm(model, *parallel, max_norm); });
      } else {
        r = optimizer.Step(step);  // one process, or the distributed optimizer (reduces itself)
      }
      stats->Scalar("ppo_actor/update/grad_norm", r.grad_norm);
      stats->Scalar("ppo_actor/update/lr", r.lr);
      stats->Scalar("ppo_actor/update/update_successful", r.updated ? 1.0 : 0.0);
      stats->Scalar("ppo_actor/update/num_micro_batches", static_cast<double>(n_micro));
      if (!r.updated) {
        MOERL_LOG(WARNING) << "step " << step << ": gradient norm " << r.grad_norm
                           << " is not finite; update skipped";
      }
    }
  } catch (const CollectiveError& e) {
    return absl::UnavailableError(absl::StrCat("training step ", step, ": ", e.what()));
  } catch (const std::invalid_argument& e) {
    return absl::FailedPreconditionError(absl::StrCat("training step ", step, ": ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace moerl
