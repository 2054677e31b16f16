// Pipeline stages with the 1F1B schedule against one process running the
// same micro-batches: the tiny Qwen3-MoE made 4 layers deep (layer 1 dense,
// 8 experts, top-2, aux 0.01, z 0.001), a minibatch of 8 packed sequences in
// 4 micro-batches (micro-batch m = sequences 2m and 2m + 1; with d2, data
// rank r takes sequence 2m + r), loss = CE summed over the tokens / all
// tokens of the minibatch + the router terms weighted by the micro-batch's
// share of the tokens. Ranks are threads over Gloo. For each layout: the
// minibatch loss, the global grad norm and every gradient, gathered from
// the stage that holds it, equal one process's (max |a - b| / max |b| <=
// 1e-5 per tensor); the order of forwards and backwards is 1F1B's; two
// runs are bit-identical.
#include "trainer/parallel/pipeline_schedule.h"

#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/status.h"
#include "trainer/model/model.h"
#include "trainer/parallel/in_process_ranks.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/testing/rank_testing.h"
#include "trainer/parallel/testing/tiny_lm.h"

namespace moerl {
namespace {

constexpr int64_t kMicroBatches = 4;

ModelConfig TinyMoe(bool tied = false) {
  ModelConfig config = TinyMoeConfig();
  config.num_hidden_layers = 4;
  config.mlp_only_layers = {1};
  config.tie_word_embeddings = tied;
  return config;
}

std::vector<std::vector<int64_t>> Sequences(int64_t vocab) { return LcgSequences(vocab, {7, 5, 9, 6, 4, 8, 3, 10}); }

// Sequences of micro-batch m on data rank `shard` of `shards`.
std::vector<std::vector<int64_t>> MicroBatch(const std::vector<std::vector<int64_t>>& seqs, int64_t m, int shard,
                                             int shards) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t i = 2 * m; i < 2 * m + 2; ++i) {
    if (i % shards == shard) out.push_back(seqs[i]);
  }
  return out;
}

struct RunResult {
  double loss = 0;
  double grad_norm = 0;
  std::map<std::string, at::Tensor> grads;
  std::map<std::string, int64_t> first_expert;
  std::vector<std::string> order;
};

std::map<std::string, int64_t> ExpertOffsets(Qwen3Model& model) {
  std::map<std::string, int64_t> out;
  for (size_t l = 0; l < model.layers().size(); ++l) {
    if (!model.layers()[l]->moe) continue;
    const std::string p = "model.layers." + std::to_string(model.first_layer() + l) + ".mlp.experts.";
    out[p + "gate_up_proj"] = out[p + "down_proj"] = model.layers()[l]->moe->experts->first_expert();
  }
  return out;
}

// One process, the micro-batches one after the other.
RunResult Reference(bool tied) {
  ModelConfig config = TinyMoe(tied);
  const auto seqs = Sequences(config.vocab_size);
  const int64_t global_rows = NextTokenRows(seqs);
  auto model = std::make_shared<Qwen3Model>(config);
  model->InitializeWeights(1);
  RunResult r;
  for (int64_t m = 0; m < kMicroBatches; ++m) {
    const auto micro = MicroBatch(seqs, m, 0, 1);
    ModelInput in = ModelInput::Pack(micro);
    ModelOutput out = model->Forward(in);
    const double w = static_cast<double>(NextTokenRows(micro)) / static_cast<double>(global_rows);
    at::Tensor loss = CrossEntropyShare(*model, in, out.hidden_td, global_rows) +
                      out.aux_loss * (config.router_aux_loss_coef * w) + out.z_loss * (config.router_z_loss_coef * w);
    loss.backward();
    r.loss += loss.item<double>();
  }
  double sq = 0;
  for (auto& p : model->named_parameters()) {
    r.grads[p.key()] = p.value().grad().clone();
    sq += p.value().grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  r.grad_norm = std::sqrt(sq);
  return r;
}

std::vector<RunResult> Pipelined(const std::string& allocation, const ParallelizeOptions& parallelize = {},
                                 bool tied = false) {
  auto mode = ParseAllocationMode(allocation);
  EXPECT_TRUE(mode.ok()) << mode.status();
  auto dims = TrainingDims(*mode);
  EXPECT_TRUE(dims.ok()) << dims.status();
  ModelConfig config = TinyMoe(tied);
  const auto seqs = Sequences(config.vocab_size);
  const int64_t global_rows = NextTokenRows(seqs);
  std::vector<RunResult> results(dims->WorldSize());
  ParallelOptions options;
  options.comm.timeout = std::chrono::seconds(30);
  absl::Status status = RunInProcessRanks(
      *dims,
      [&](const ParallelState& state) -> absl::Status {
        auto model = std::make_shared<Qwen3Model>(config);
        MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state, parallelize));
        model->InitializeWeights(1);  // after sharding: each rank draws its layers' and experts' values
        Qwen3StageLoss loss;
        loss.input_of = [&](int64_t m) {
          return ModelInput::Pack(MicroBatch(seqs, m, state.data_shard(), state.num_data_shards()));
        };
        loss.loss_of = [&](int64_t, const ModelInput& in, const at::Tensor& hidden_td) {
          return CrossEntropyShare(*model, in, hidden_td, global_rows);
        };
        loss.router_scale = [&](int64_t m) {
          return static_cast<double>(NextTokenRows(MicroBatch(seqs, m, 0, 1))) / static_cast<double>(global_rows);
        };
        loss.aux_coef = config.router_aux_loss_coef;
        loss.z_coef = config.router_z_loss_coef;
        PipelineOptions pipeline;
        pipeline.num_micro_batches = kMicroBatches;
        pipeline.hidden_size = config.hidden_size;
        pipeline.stats_size = RouterStatsSize(config);
        PipelineResult run =
            Run1F1B(state.group(RankGroupKind::kPipeline), pipeline, Qwen3StageForward(*model, std::move(loss)));
        GradientReducer reducer(state);
        MOERL_RETURN_IF_ERROR(reducer.Reduce(*model));
        RunResult& r = results[state.rank()];
        r.grad_norm = GlobalGradNorm(*model, state);
        at::Tensor total = at::tensor({run.loss}, at::TensorOptions().dtype(at::kDouble));
        state.group(RankGroupKind::kPipeline).AllReduceSum(total);
        state.group(RankGroupKind::kDataContext).AllReduceSum(total);
        r.loss = total.item<double>();
        for (auto& p : model->named_parameters()) r.grads[p.key()] = p.value().grad().clone();
        r.first_expert = ExpertOffsets(*model);
        for (const PipelineEvent& e : run.order) r.order.push_back(e.ToString());
        return absl::OkStatus();
      },
      options);
  EXPECT_TRUE(status.ok()) << status;
  return results;
}

void CheckLayout(const std::string& allocation, const ParallelizeOptions& parallelize = {}, bool tied = false) {
  SCOPED_TRACE(allocation);
  const RunResult reference = Reference(tied);
  std::vector<RunResult> ranks = Pipelined(allocation, parallelize, tied);
  std::set<std::string> seen;
  double worst_grad = 0, worst_loss = 0, worst_norm = 0;
  for (size_t r = 0; r < ranks.size(); ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    const double loss_err = std::abs(ranks[r].loss - reference.loss) / std::abs(reference.loss);
    const double norm_err = std::abs(ranks[r].grad_norm - reference.grad_norm) / reference.grad_norm;
    EXPECT_LE(loss_err, 1e-5) << ranks[r].loss << " vs " << reference.loss;
    EXPECT_LE(norm_err, 1e-5) << ranks[r].grad_norm << " vs " << reference.grad_norm;
    worst_loss = std::max(worst_loss, loss_err);
    worst_norm = std::max(worst_norm, norm_err);
    for (const auto& [name, grad] : ranks[r].grads) {
      ASSERT_TRUE(reference.grads.count(name)) << name;
      at::Tensor ref = reference.grads.at(name);
      if (auto it = ranks[r].first_expert.find(name); it != ranks[r].first_expert.end()) {
        ref = ref.narrow(0, it->second, grad.size(0));
      }
      ASSERT_EQ(grad.sizes(), ref.sizes()) << name;
      const double err = MaxRelativeError(grad, ref);
      EXPECT_LE(err, 1e-5) << name;
      worst_grad = std::max(worst_grad, err);
      seen.insert(name);
    }
  }
  EXPECT_EQ(seen.size(), reference.grads.size()) << "every parameter is held by some stage";
  std::printf("%s: loss %.3e, grad norm %.3e, worst gradient (max element) %.3e relative to one process\n",
              allocation.c_str(), worst_loss, worst_norm, worst_grad);
}

TEST(Pipeline1F1B, TwoStagesMatchOneProcess) { CheckLayout("megatron:p2"); }

TEST(Pipeline1F1B, HybridTwoStagesMatchOneProcess) { CheckLayout("megatron:(attn:d1p2t1|ffn:d1p2e1)"); }

TEST(Pipeline1F1B, DataParallelTwoStagesMatchOneProcess) { CheckLayout("megatron:d2p2"); }

TEST(Pipeline1F1B, ExpertParallelTwoStagesMatchOneProcess) { CheckLayout("megatron:(attn:d2p2|ffn:p2e2)"); }

TEST(Pipeline1F1B, FourStagesMatchOneProcess) { CheckLayout("megatron:p4"); }

TEST(Pipeline1F1B, UnevenSplitMatchesOneProcess) {
  ParallelizeOptions options;
  options.pipeline_stage_layers = {3, 1};
  CheckLayout("megatron:p2", options);
}

TEST(Pipeline1F1B, TiedEmbeddingsAreSummedOverTheEmbeddingGroup) { CheckLayout("megatron:p2", {}, /*tied=*/true); }

TEST(Pipeline1F1B, OrderIsOneForwardOneBackward) {
  EXPECT_EQ(absl::StrJoin(OneFOneBOrder(1, 0, 4), " ", [](std::string* o, const PipelineEvent& e) {
              o->append(e.ToString());
            }),
            "F0 B0 F1 B1 F2 B2 F3 B3");
  std::vector<RunResult> p2 = Pipelined("megatron:p2");
  ASSERT_EQ(p2.size(), 2u);
  EXPECT_EQ(absl::StrJoin(p2[0].order, " "), "F0 F1 B0 F2 B1 F3 B2 B3");
  EXPECT_EQ(absl::StrJoin(p2[1].order, " "), "F0 B0 F1 B1 F2 B2 F3 B3");
  std::vector<RunResult> p4 = Pipelined("megatron:p4");
  ASSERT_EQ(p4.size(), 4u);
  EXPECT_EQ(absl::StrJoin(p4[0].order, " "), "F0 F1 F2 F3 B0 B1 B2 B3");
  EXPECT_EQ(absl::StrJoin(p4[1].order, " "), "F0 F1 F2 B0 F3 B1 B2 B3");
  EXPECT_EQ(absl::StrJoin(p4[2].order, " "), "F0 F1 B0 F2 B1 F3 B2 B3");
  EXPECT_EQ(absl::StrJoin(p4[3].order, " "), "F0 B0 F1 B1 F2 B2 F3 B3");
}

TEST(Pipeline1F1B, TwoRunsAreBitIdentical) {
  std::vector<RunResult> a = Pipelined("megatron:(attn:d2p2|ffn:p2e2)");
  std::vector<RunResult> b = Pipelined("megatron:(attn:d2p2|ffn:p2e2)");
  ASSERT_EQ(a.size(), b.size());
  for (size_t r = 0; r < a.size(); ++r) {
    EXPECT_EQ(a[r].loss, b[r].loss);
    EXPECT_EQ(a[r].grad_norm, b[r].grad_norm);
    for (const auto& [name, t] : a[r].grads) EXPECT_TRUE(t.equal(b[r].grads.at(name))) << name;
  }
}

TEST(PipelineStageLayers, SplitsAndNamesTheProblem) {
  auto even = PipelineStageLayers(4, 2, 1);
  ASSERT_TRUE(even.ok());
  EXPECT_EQ(*even, std::make_pair(int64_t{2}, int64_t{4}));
  auto uneven = PipelineStageLayers(3, 2, 1, {2, 1});
  ASSERT_TRUE(uneven.ok());
  EXPECT_EQ(*uneven, std::make_pair(int64_t{2}, int64_t{3}));
  auto indivisible = PipelineStageLayers(3, 2, 0);
  EXPECT_EQ(indivisible.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(indivisible.status().message().find("not divisible by pp=2"), std::string::npos) << indivisible.status();
  EXPECT_EQ(PipelineStageLayers(3, 2, 0, {2, 2}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PipelineStageLayers(3, 2, 0, {3, 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PipelineStageLayers(3, 2, 0, {3}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PipelineStageLayers, ParallelizeRejectsAnIndivisibleModel) {
  ParallelDims dims;
  dims.pp = 2;
  ModelConfig config = TinyMoe();
  config.num_hidden_layers = 3;
  absl::Status status = RunInProcessRanks(dims, [&](const ParallelState& state) -> absl::Status {
    Qwen3Model model(config);
    return ParallelizeQwen3(model, state);
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

}  // namespace
}  // namespace moerl
