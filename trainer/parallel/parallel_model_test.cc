// The parallel model against the one-process model (the reference): the tiny
// Qwen3-MoE (trainer/model/testdata/moe config: 3 layers, the middle one
// dense, 8 experts, top-2, aux loss 0.01; z-loss 0.001 added here), a fixed
// packed batch of 4 sequences split over the data-parallel ranks, ranks as
// threads over Gloo. For each layout: the summed loss shares equal the
// one-process loss, every reduced gradient (experts: this rank's range) its
// one-process gradient (max |a - b| / max |b| <= 1e-5 per tensor), the global
// grad norm the one-process norm; after 3 AdamW steps (clipped with the
// global norm) every weight tensor equals the one-process one
// (||a - b|| / ||b|| <= 1e-5; per element 1e-3, see CheckLayout). Two runs
// are bit-identical.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "common/alloc_mode/alloc_mode.h"
#include "common/status.h"
#include "trainer/model/model.h"
#include "trainer/parallel/in_process_ranks.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/testing/rank_testing.h"
#include "trainer/parallel/testing/tiny_lm.h"

namespace moerl {
namespace {

constexpr int kSteps = 3;
constexpr double kMaxNorm = 0.5;

ModelConfig TinyMoe() { return TinyMoeConfig(); }

std::vector<std::vector<int64_t>> Batch(int64_t vocab) { return LcgSequences(vocab, {7, 5, 9, 6}); }

// This rank's share of the global objective: CE summed over its rows divided
// by all ranks' rows, plus the router losses (already shares).
at::Tensor LossShare(Qwen3Model& model, const std::vector<std::vector<int64_t>>& seqs, int64_t global_rows) {
  ModelInput in = ModelInput::Pack(seqs);
  ModelOutput out = model.Forward(in);
  return CrossEntropyShare(model, in, out.hidden_td, global_rows) +
         out.aux_loss * model.config().router_aux_loss_coef + out.z_loss * model.config().router_z_loss_coef;
}

struct RunResult {
  double loss = 0;       // first step, before the update
  double grad_norm = 0;  // first step
  std::map<std::string, at::Tensor> grads;    // first step, reduced
  std::map<std::string, at::Tensor> weights;  // after kSteps
  std::map<std::string, int64_t> first_expert;  // expert params: first expert held
};

std::map<std::string, int64_t> ExpertOffsets(Qwen3Model& model) {
  std::map<std::string, int64_t> out;
  for (size_t l = 0; l < model.layers().size(); ++l) {
    if (!model.layers()[l]->moe) continue;
    const std::string p = "model.layers." + std::to_string(l) + ".mlp.experts.";
    out[p + "gate_up_proj"] = out[p + "down_proj"] = model.layers()[l]->moe->experts->first_expert();
  }
  return out;
}

RunResult Reference() {
  ModelConfig config = TinyMoe();
  auto seqs = Batch(config.vocab_size);
  auto model = std::make_shared<Qwen3Model>(config);
  model->InitializeWeights(1);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
  RunResult r;
  for (int step = 0; step < kSteps; ++step) {
    opt.zero_grad();
    at::Tensor loss = LossShare(*model, seqs, NextTokenRows(seqs));
    loss.backward();
    const double norm = torch::nn::utils::clip_grad_norm_(model->parameters(), kMaxNorm);
    if (step == 0) {
      r.loss = loss.item<double>();
      r.grad_norm = norm;
      for (auto& p : model->named_parameters()) r.grads[p.key()] = p.value().grad().clone();
    }
    opt.step();
  }
  for (auto& p : model->named_parameters()) r.weights[p.key()] = p.value().detach().clone();
  return r;
}

// Every rank's result, by global rank.
std::vector<RunResult> Parallel(const std::string& allocation) {
  auto mode = ParseAllocationMode(allocation);
  EXPECT_TRUE(mode.ok()) << mode.status();
  auto dims = TrainingDims(*mode);
  EXPECT_TRUE(dims.ok()) << dims.status();
  ModelConfig config = TinyMoe();
  const auto seqs = Batch(config.vocab_size);
  std::vector<RunResult> results(dims->WorldSize());
  ParallelOptions options;
  options.comm.timeout = std::chrono::seconds(30);
  absl::Status status = RunInProcessRanks(
      *dims,
      [&](const ParallelState& state) -> absl::Status {
        auto model = std::make_shared<Qwen3Model>(config);
        MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state));
        model->InitializeWeights(1);  // after sharding: each rank draws its experts' range
        // Sequences dealt round-robin over the data-parallel ranks.
        std::vector<std::vector<int64_t>> mine;
        for (size_t i = state.data_shard(); i < seqs.size(); i += state.num_data_shards()) mine.push_back(seqs[i]);
        GradientReducer reducer(state);
        torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
        RunResult& r = results[state.rank()];
        for (int step = 0; step < kSteps; ++step) {
          opt.zero_grad();
          at::Tensor loss = LossShare(*model, mine, NextTokenRows(seqs));
          loss.backward();
          MOERL_RETURN_IF_ERROR(reducer.Reduce(*model));
          const double norm = ClipGradNorm(*model, state, kMaxNorm);
          if (step == 0) {
            at::Tensor total = loss.detach().to(at::kDouble).reshape({1}).clone();
            state.group(RankGroupKind::kDataContext).AllReduceSum(total);
            r.loss = total.item<double>();
            r.grad_norm = norm;
            for (auto& p : model->named_parameters()) r.grads[p.key()] = p.value().grad().clone();
          }
          opt.step();
        }
        for (auto& p : model->named_parameters()) r.weights[p.key()] = p.value().detach().clone();
        r.first_expert = ExpertOffsets(*model);
        return absl::OkStatus();
      },
      options);
  EXPECT_TRUE(status.ok()) << status;
  return results;
}

// max |a - b| / max |b|: every element, scaled by the tensor.
// ||a - b|| / ||b|| (Frobenius), Megatron's metric for its grads-match test.
double NormRelativeError(const at::Tensor& a, const at::Tensor& b) {
  const double scale = b.to(at::kDouble).norm().item<double>();
  return (a - b).to(at::kDouble).norm().item<double>() / (scale > 0 ? scale : 1.0);
}

enum class Metric { kMaxElement, kNorm };

// `got`'s tensors against `want`'s; expert tensors against their range.
// Returns the worst error seen.
double ExpectClose(const std::map<std::string, at::Tensor>& got, const std::map<std::string, at::Tensor>& want,
                   const std::map<std::string, int64_t>& first_expert, Metric metric, double tol,
                   const std::string& what) {
  EXPECT_EQ(got.size(), want.size());
  double worst = 0;
  for (const auto& [name, tensor] : got) {
    at::Tensor ref = want.at(name);
    if (auto it = first_expert.find(name); it != first_expert.end()) ref = ref.narrow(0, it->second, tensor.size(0));
    EXPECT_EQ(tensor.sizes(), ref.sizes()) << name;
    const double err = metric == Metric::kNorm ? NormRelativeError(tensor, ref) : MaxRelativeError(tensor, ref);
    EXPECT_LE(err, tol) << what << " " << name;
    worst = std::max(worst, err);
  }
  return worst;
}

void CheckLayout(const std::string& allocation) {
  SCOPED_TRACE(allocation);
  static const RunResult reference = Reference();
  std::vector<RunResult> ranks = Parallel(allocation);
  for (size_t r = 0; r < ranks.size(); ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    EXPECT_NEAR(ranks[r].loss, reference.loss, 1e-5 * std::abs(reference.loss));
    EXPECT_NEAR(ranks[r].grad_norm, reference.grad_norm, 1e-5 * reference.grad_norm);
    const double grad_max = ExpectClose(ranks[r].grads, reference.grads, ranks[r].first_expert, Metric::kMaxElement,
                                        1e-5, "gradient");
    // After AdamW the worst single element can differ by more: Adam divides
    // by sqrt(v), so a gradient element near zero, where summation order
    // decides the last bits, moves as far as a large one. Weights are
    // compared per tensor (norm) at 1e-5, and per element at 1e-3.
    const double weight_norm = ExpectClose(ranks[r].weights, reference.weights, ranks[r].first_expert, Metric::kNorm,
                                           1e-5, "weight");
    const double weight_max = ExpectClose(ranks[r].weights, reference.weights, ranks[r].first_expert,
                                          Metric::kMaxElement, 1e-3, "weight element");
    std::printf("%s rank %zu: loss %.3e, grad norm %.3e, worst gradient (max element) %.3e, worst weight after %d "
                "steps (norm) %.3e, (max element) %.3e\n",
                allocation.c_str(), r, std::abs(ranks[r].loss - reference.loss) / std::abs(reference.loss),
                std::abs(ranks[r].grad_norm - reference.grad_norm) / reference.grad_norm, grad_max, kSteps,
                weight_norm, weight_max);
  }
}

TEST(ParallelQwen3, DataParallelMatchesOneProcess) { CheckLayout("megatron:d2"); }

TEST(ParallelQwen3, ExpertParallelMatchesOneProcess) { CheckLayout("megatron:d2e2"); }

TEST(ParallelQwen3, FoldedLayoutMatchesOneProcess) { CheckLayout("megatron:(attn:d2|ffn:e2)"); }

TEST(ParallelQwen3, ExpertDataParallelMatchesOneProcess) { CheckLayout("megatron:(attn:d4|ffn:e2)"); }

TEST(ParallelQwen3, TwoRunsAreBitIdentical) {
  std::vector<RunResult> a = Parallel("megatron:(attn:d2|ffn:e2)");
  std::vector<RunResult> b = Parallel("megatron:(attn:d2|ffn:e2)");
  ASSERT_EQ(a.size(), b.size());
  for (size_t r = 0; r < a.size(); ++r) {
    EXPECT_EQ(a[r].loss, b[r].loss);
    for (const auto& [name, t] : a[r].weights) EXPECT_TRUE(t.equal(b[r].weights.at(name))) << name;
    for (const auto& [name, t] : a[r].grads) EXPECT_TRUE(t.equal(b[r].grads.at(name))) << name;
  }
}

TEST(ParallelQwen3, UnsupportedDimensionsAreUnimplemented) {
  ParallelDims dims;
  dims.cp = 2;
  dims.pp = 3;  // context parallelism inside pipeline stages
  absl::Status status = RunInProcessRanks(dims, [&](const ParallelState& state) -> absl::Status {
    Qwen3Model model(TinyMoe());
    return ParallelizeQwen3(model, state);
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
}

}  // namespace
}  // namespace moerl
