// The distributed optimizer against TrainOptimizer (torch::optim::AdamW) on
// one process: the tiny Qwen3-MoE, a fixed packed batch of 4 sequences split
// over the data-parallel ranks, ranks as threads over Gloo, AdamW with
// weight decay and clipping at 0.5 (the norm is larger, so every step
// clips). Small buckets (1000 elements) so that parameters are cut across
// shard boundaries and buckets are padded. Per step the global grad norm
// within 1e-5 relative, after 3 steps every weight tensor within 1e-5
// (norm; 1e-3 per element, Adam's sqrt(v) amplifies summation-order bits of
// near-zero gradients) and, under bf16, the fp32 masters too. Two runs
// bit-identical; Save/Load and Export/Import resume bit-identically; Load
// of another layout's shards is DataLoss; the state per rank is counted.
#include <gtest/gtest.h>

#include <ATen/ops/equal.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/alloc_mode/alloc_mode.h"
#include "common/logging.h"
#include "common/status.h"
#include "trainer/model/model.h"
#include "trainer/optimizer.h"
#include "trainer/parallel/distributed_optimizer.h"
#include "trainer/parallel/in_process_ranks.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/testing/tiny_lm.h"

namespace moerl {
namespace {

constexpr int kSteps = 3;
constexpr int64_t kBucket = 1000;

OptimizerSettings Adam() {
  OptimizerSettings o;
  o.lr = 1e-3;
  o.weight_decay = 0.01;
  o.gradient_clipping = 0.5;
  return o;
}

std::vector<std::vector<int64_t>> Batch(int64_t vocab) { return LcgSequences(vocab, {7, 5, 9, 6}); }

at::Tensor LossShare(Qwen3Model& model, const std::vector<std::vector<int64_t>>& seqs, int64_t global_rows) {
  ModelInput in = ModelInput::Pack(seqs);
  ModelOutput out = model.Forward(in);
  return CrossEntropyShare(model, in, out.hidden_td, global_rows) +
         out.aux_loss * model.config().router_aux_loss_coef + out.z_loss * model.config().router_z_loss_coef;
}

struct RunResult {
  std::vector<double> grad_norms;
  std::map<std::string, at::Tensor> weights;  // after kSteps (fp32)
  std::map<std::string, at::Tensor> masters;  // bf16 runs: the fp32 masters
  std::map<std::string, int64_t> first_expert;
  int64_t state_bytes = 0;
  int64_t param_numel = 0;
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

void Record(Qwen3Model& model, const TrainOptimizer& opt, const std::vector<at::Tensor>& masters, RunResult* r) {
  size_t i = 0;
  for (auto& p : model.named_parameters()) {
    r->weights[p.key()] = p.value().detach().to(at::kFloat).clone();
    if (!masters.empty()) r->masters[p.key()] = masters[i];
    r->param_numel += p.value().numel();
    ++i;
  }
  r->first_expert = ExpertOffsets(model);
  r->state_bytes = opt.StateBytes();
}

RunResult Reference(bool bf16) {
  ModelConfig config = TinyMoeConfig();
  auto seqs = Batch(config.vocab_size);
  auto model = std::make_shared<Qwen3Model>(config);
  model->InitializeWeights(1);
  if (bf16) model->to(at::kBFloat16);
  TrainOptimizer opt(model->parameters(), Adam(), LrSchedule{});
  RunResult r;
  for (int step = 0; step < kSteps; ++step) {
    opt.ZeroGrad();
    LossShare(*model, seqs, NextTokenRows(seqs)).backward();
    r.grad_norms.push_back(opt.Step(step).grad_norm);
  }
  Record(*model, opt, opt.master_weights(), &r);
  return r;
}

struct ParallelRun {
  bool bf16 = false;
  int64_t bucket = kBucket;
  // After this many steps, save the shards to save_dir/rank-<r>.pt (or
  // export the states) and continue with a fresh model + optimizer restored
  // from them; 0: straight.
  int restart_after = 0;
  bool through_export = false;
  std::string save_dir;
  // GradientReducer + TrainOptimizer with the global clip instead (the
  // replicated optimizer), for comparison.
  bool replicated = false;
};

ParallelRun RunOptions(bool bf16, int64_t bucket = kBucket, int restart_after = 0, bool through_export = false,
                std::string save_dir = "") {
  ParallelRun r;
  r.bf16 = bf16;
  r.bucket = bucket;
  r.restart_after = restart_after;
  r.through_export = through_export;
  r.save_dir = std::move(save_dir);
  return r;
}

std::vector<RunResult> Parallel(const std::string& allocation, const ParallelRun& run) {
  auto mode = ParseAllocationMode(allocation);
  EXPECT_TRUE(mode.ok()) << mode.status();
  auto dims = TrainingDims(*mode);
  EXPECT_TRUE(dims.ok()) << dims.status();
  ModelConfig config = TinyMoeConfig();
  const auto seqs = Batch(config.vocab_size);
  std::vector<RunResult> results(dims->WorldSize());
  ParallelOptions options;
  options.comm.timeout = std::chrono::seconds(30);
  absl::Status status = RunInProcessRanks(
      *dims,
      [&](const ParallelState& state) -> absl::Status {
        auto build = [&] {
          auto model = std::make_shared<Qwen3Model>(config);
          MOERL_CHECK(ParallelizeQwen3(*model, state).ok());
          model->InitializeWeights(1);
          if (run.bf16) model->to(at::kBFloat16);
          return model;
        };
        std::shared_ptr<Qwen3Model> model = build();
        if (run.replicated) {
          GradientReducer reducer(state);
          TrainOptimizer opt(model->parameters(), Adam(), LrSchedule{});
          std::vector<std::vector<int64_t>> mine;
          for (size_t i = state.data_shard(); i < seqs.size(); i += state.num_data_shards()) mine.push_back(seqs[i]);
          RunResult& r = results[state.rank()];
          for (int step = 0; step < kSteps; ++step) {
            opt.ZeroGrad();
            LossShare(*model, mine, NextTokenRows(seqs)).backward();
            MOERL_RETURN_IF_ERROR(reducer.Reduce(*model));
            r.grad_norms.push_back(
                opt.Step(step, [&](double max_norm) { return ClipGradNorm(*model, state, max_norm); }).grad_norm);
          }
          Record(*model, opt, opt.master_weights(), &r);
          return absl::OkStatus();
        }
        auto opt = std::make_unique<DistributedOptimizer>(*model, state, Adam(), LrSchedule{}, run.bucket);
        std::vector<std::vector<int64_t>> mine;
        for (size_t i = state.data_shard(); i < seqs.size(); i += state.num_data_shards()) mine.push_back(seqs[i]);
        RunResult& r = results[state.rank()];
        for (int step = 0; step < kSteps; ++step) {
          if (run.restart_after > 0 && step == run.restart_after) {
            // A fresh model with the trained weights, and the optimizer's state
            // restored from the shards (saved) or the whole tensors (exported).
            auto fresh = build();
            {
              at::NoGradGuard no_grad;
              auto to = fresh->parameters();
              auto from = model->parameters();
              for (size_t i = 0; i < to.size(); ++i) to[i].copy_(from[i]);
            }
            auto restored = std::make_unique<DistributedOptimizer>(*fresh, state, Adam(), LrSchedule{}, run.bucket);
            if (run.through_export) {
              MOERL_RETURN_IF_ERROR(restored->ImportParameterStates(opt->ExportParameterStates(), opt->adam_step()));
            } else {
              const std::string path = run.save_dir + "/rank-" + std::to_string(state.rank()) + ".pt";
              MOERL_RETURN_IF_ERROR(opt->Save(path));
              MOERL_RETURN_IF_ERROR(restored->Load(path));
            }
            model = fresh;
            opt = std::move(restored);
          }
          opt->ZeroGrad();
          LossShare(*model, mine, NextTokenRows(seqs)).backward();
          r.grad_norms.push_back(opt->Step(step).grad_norm);
        }
        Record(*model, *opt, opt->FullMasterWeights(), &r);
        return absl::OkStatus();
      },
      options);
  EXPECT_TRUE(status.ok()) << status;
  return results;
}

double NormRelativeError(const at::Tensor& a, const at::Tensor& b) {
  const double scale = b.to(at::kDouble).norm().item<double>();
  return (a - b).to(at::kDouble).norm().item<double>() / (scale > 0 ? scale : 1.0);
}

double MaxElementError(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).to(at::kDouble).abs() / b.to(at::kDouble).abs().clamp_min(1e-3)).max().item<double>();
}

// Worst (norm, element) error of `got` against `want` (experts: their range).
std::pair<double, double> Compare(const std::map<std::string, at::Tensor>& got,
                                  const std::map<std::string, at::Tensor>& want,
                                  const std::map<std::string, int64_t>& first_expert, const std::string& what,
                                  double norm_tol = 1e-5, double element_tol = 2e-3) {
  EXPECT_EQ(got.size(), want.size()) << what;
  double worst_norm = 0, worst_element = 0;
  for (const auto& [name, tensor] : got) {
    at::Tensor ref = want.at(name);
    if (auto it = first_expert.find(name); it != first_expert.end()) ref = ref.narrow(0, it->second, tensor.size(0));
    EXPECT_EQ(tensor.sizes(), ref.sizes()) << what << " " << name;
    const double norm = NormRelativeError(tensor, ref), element = MaxElementError(tensor, ref);
    EXPECT_LE(norm, norm_tol) << what << " " << name;
    EXPECT_LE(element, element_tol) << what << " " << name;
    worst_norm = std::max(worst_norm, norm);
    worst_element = std::max(worst_element, element);
  }
  return {worst_norm, worst_element};
}

void CheckLayout(const std::string& allocation) {
  SCOPED_TRACE(allocation);
  static const RunResult reference = Reference(false);
  const std::vector<RunResult> ranks = Parallel(allocation, RunOptions(false));
  for (size_t r = 0; r < ranks.size(); ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_EQ(ranks[r].grad_norms.size(), static_cast<size_t>(kSteps));
    double worst_norm = 0;
    for (int s = 0; s < kSteps; ++s) {
      const double e = std::abs(ranks[r].grad_norms[s] - reference.grad_norms[s]) / reference.grad_norms[s];
      EXPECT_LE(e, 1e-5) << "step " << s;
      worst_norm = std::max(worst_norm, e);
    }
    const auto [w_norm, w_element] = Compare(ranks[r].weights, reference.weights, ranks[r].first_expert, "weight");
    std::printf("%s rank %zu: grad norm %.3e, weights after %d steps (norm) %.3e, (max element) %.3e\n",
                allocation.c_str(), r, worst_norm, kSteps, w_norm, w_element);
  }
}

TEST(DistributedOptimizer, DataParallelMatchesOneProcess) { CheckLayout("megatron:d2"); }
TEST(DistributedOptimizer, FourDataRanksMatchOneProcess) { CheckLayout("megatron:d4"); }
TEST(DistributedOptimizer, FoldedExpertLayoutMatchesOneProcess) { CheckLayout("megatron:(attn:d2|ffn:e2)"); }
// edp = 2: the experts' state is sharded too.
TEST(DistributedOptimizer, ExpertDataShardsMatchOneProcess) { CheckLayout("megatron:(attn:d4|ffn:e2)"); }

// Two ranks sum a + b the same way in both reductions, so against the
// replicated optimizer (GradientReducer, TrainOptimizer, ClipGradNorm) on
// the same layout only the norm's summation order differs.
TEST(DistributedOptimizer, MatchesTheReplicatedOptimizerOnTheSameLayout) {
  for (const std::string layout : {"megatron:d2", "megatron:(attn:d2|ffn:e2)"}) {
    ParallelRun replicated = RunOptions(false);
    replicated.replicated = true;
    const std::vector<RunResult> a = Parallel(layout, RunOptions(false)), b = Parallel(layout, replicated);
    for (size_t r = 0; r < a.size(); ++r) {
      double worst = 0;
      for (const auto& [name, t] : a[r].weights) {
        worst = std::max(worst, ((t - b[r].weights.at(name)).abs().max() /
                                 b[r].weights.at(name).abs().max().clamp_min(1e-30)).item<double>());
      }
      for (int s = 0; s < kSteps; ++s) {
        EXPECT_LE(std::abs(a[r].grad_norms[s] - b[r].grad_norms[s]), 1e-12 * b[r].grad_norms[s]) << layout;
      }
      EXPECT_LE(worst, 1e-6) << layout << " rank " << r;
      std::printf("%s rank %zu vs the replicated optimizer: worst weight (max element / max of tensor) %.3e\n",
                  layout.c_str(), r, worst);
    }
  }
}

// bf16 parameters, fp32 masters: every rank's parameters are its gathered
// masters rounded; against one process the bf16 forward and gradients
// (rounded per rank's share, then summed in fp32) differ at bf16's
// precision, so the masters are held to 2e-2 (norm) and the grad norm to
// 1e-3. Exactness of the sharded masters is checked by the resume tests.
TEST(DistributedOptimizer, MixedPrecisionKeepsShardedMasters) {
  const RunResult reference = Reference(true);
  const std::vector<RunResult> ranks = Parallel("megatron:d2", RunOptions(true));
  for (size_t r = 0; r < ranks.size(); ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_EQ(ranks[r].masters.size(), ranks[r].weights.size());
    for (const auto& [name, w] : ranks[r].weights) {
      EXPECT_TRUE(at::equal(ranks[r].masters.at(name).to(at::kBFloat16).to(at::kFloat), w)) << name;
    }
    for (int s = 0; s < kSteps; ++s) {
      EXPECT_LE(std::abs(ranks[r].grad_norms[s] - reference.grad_norms[s]), 1e-3 * reference.grad_norms[s]);
    }
    double worst = 0;
    for (const auto& [name, m] : ranks[r].masters) {
      const double e = NormRelativeError(m, reference.masters.at(name));
      EXPECT_LE(e, 2e-2) << name;
      worst = std::max(worst, e);
    }
    std::printf("megatron:d2 bf16 rank %zu: masters after %d steps (norm) %.3e\n", r, kSteps, worst);
  }
}

bool Identical(const std::vector<RunResult>& a, const std::vector<RunResult>& b) {
  if (a.size() != b.size()) return false;
  for (size_t r = 0; r < a.size(); ++r) {
    if (a[r].grad_norms != b[r].grad_norms) return false;
    for (const auto& [name, t] : a[r].weights) {
      if (!at::equal(t, b[r].weights.at(name))) return false;
    }
    for (const auto& [name, t] : a[r].masters) {
      if (!at::equal(t, b[r].masters.at(name))) return false;
    }
  }
  return true;
}

TEST(DistributedOptimizer, TwoRunsAndResumesAreBitIdentical) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/distopt";
  std::filesystem::create_directories(dir);
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "fp32");
    const std::string layout = "megatron:(attn:d2|ffn:e2)";
    const std::vector<RunResult> straight = Parallel(layout, RunOptions(bf16));
    EXPECT_TRUE(Identical(straight, Parallel(layout, RunOptions(bf16)))) << "two runs differ";
    EXPECT_TRUE(Identical(straight, Parallel(layout, RunOptions(bf16, kBucket, 2, false, dir))))
        << "Save + Load after 2 steps differs from a straight run";
    EXPECT_TRUE(Identical(straight, Parallel(layout, RunOptions(bf16, kBucket, 2, true))))
        << "ExportParameterStates + ImportParameterStates after 2 steps differs from a straight run";
  }
}

// TrainOptimizer's own Export/Import (one process) resumes bit-identically,
// and the exported moments equal the distributed optimizer's (gathered).
TEST(DistributedOptimizer, ExportMatchesTrainOptimizer) {
  ModelConfig config = TinyMoeConfig();
  auto seqs = Batch(config.vocab_size);
  auto train = [&](int steps, TrainOptimizer& opt, Qwen3Model& model) {
    for (int step = 0; step < steps; ++step) {
      opt.ZeroGrad();
      LossShare(model, seqs, NextTokenRows(seqs)).backward();
      opt.Step(step);
    }
  };
  auto a = std::make_shared<Qwen3Model>(config);
  a->InitializeWeights(1);
  TrainOptimizer opt_a(a->parameters(), Adam(), LrSchedule{});
  train(2, opt_a, *a);
  const std::vector<TrainOptimizer::ParameterOptimizerState> exported = opt_a.ExportParameterStates();
  EXPECT_EQ(opt_a.adam_step(), 2);
  auto b = std::make_shared<Qwen3Model>(config);
  {
    at::NoGradGuard no_grad;
    auto to = b->parameters(), from = a->parameters();
    for (size_t i = 0; i < to.size(); ++i) to[i].copy_(from[i]);
  }
  TrainOptimizer opt_b(b->parameters(), Adam(), LrSchedule{});
  ASSERT_TRUE(opt_b.ImportParameterStates(exported, opt_a.adam_step()).ok());
  train(1, opt_a, *a);
  train(1, opt_b, *b);
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(at::equal(pa[i], pb[i])) << "parameter " << i;
  std::vector<TrainOptimizer::ParameterOptimizerState> wrong = exported;
  wrong.pop_back();
  EXPECT_EQ(opt_b.ImportParameterStates(wrong, 2).code(), absl::StatusCode::kInvalidArgument);

  // The d2 distributed optimizer's gathered moments after 2 steps.
  auto mode = ParseAllocationMode("megatron:d2");
  ASSERT_TRUE(mode.ok());
  std::vector<std::vector<TrainOptimizer::ParameterOptimizerState>> gathered(2);
  absl::Status status = RunInProcessRanks(*TrainingDims(*mode), [&](const ParallelState& state) -> absl::Status {
    auto model = std::make_shared<Qwen3Model>(config);
    MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state));
    model->InitializeWeights(1);
    DistributedOptimizer opt(*model, state, Adam(), LrSchedule{}, kBucket);
    std::vector<std::vector<int64_t>> mine;
    for (size_t i = state.data_shard(); i < seqs.size(); i += 2) mine.push_back(seqs[i]);
    for (int step = 0; step < 2; ++step) {
      opt.ZeroGrad();
      LossShare(*model, mine, NextTokenRows(seqs)).backward();
      opt.Step(step);
    }
    gathered[state.rank()] = opt.ExportParameterStates();
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;
  for (const auto& ranks : gathered) {
    ASSERT_EQ(ranks.size(), exported.size());
    for (size_t i = 0; i < ranks.size(); ++i) {
      EXPECT_LE(NormRelativeError(ranks[i].exp_avg, exported[i].exp_avg), 1e-5) << "exp_avg " << i;
      EXPECT_LE(NormRelativeError(ranks[i].exp_avg_sq, exported[i].exp_avg_sq), 1e-5) << "exp_avg_sq " << i;
    }
  }
}

TEST(DistributedOptimizer, LoadOfAnotherLayoutIsDataLoss) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/distopt_layout";
  std::filesystem::create_directories(dir);
  ModelConfig config = TinyMoeConfig();
  auto mode = ParseAllocationMode("megatron:d2");
  ASSERT_TRUE(mode.ok());
  std::vector<absl::Status> loaded(2);
  absl::Status status = RunInProcessRanks(*TrainingDims(*mode), [&](const ParallelState& state) -> absl::Status {
    auto model = std::make_shared<Qwen3Model>(config);
    MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state));
    model->InitializeWeights(1);
    DistributedOptimizer a(*model, state, Adam(), LrSchedule{}, kBucket);
    const std::string path = dir + "/rank-" + std::to_string(state.rank()) + ".pt";
    MOERL_RETURN_IF_ERROR(a.Save(path));
    DistributedOptimizer other_buckets(*model, state, Adam(), LrSchedule{}, 40'000'000);
    loaded[state.rank()] = other_buckets.Load(path);
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;
  for (const absl::Status& s : loaded) {
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find("resume under the layout that wrote them"), absl::string_view::npos) << s;
  }
}

// Bytes of optimizer state per rank against one process (fp32: exp_avg and
// exp_avg_sq; bf16: plus the fp32 masters), Megatron's default bucket (one
// bucket per parameter list here).
TEST(DistributedOptimizer, StatePerRankIsAboutOneOverDataParallel) {
  for (bool bf16 : {false, true}) {
    const RunResult one = Reference(bf16);
    for (const std::string layout : {"megatron:d2", "megatron:d4", "megatron:(attn:d2|ffn:e2)",
                                     "megatron:(attn:d4|ffn:e2)"}) {
      const std::vector<RunResult> ranks = Parallel(layout, RunOptions(bf16, 40'000'000));
      int64_t worst = 0;
      for (const RunResult& r : ranks) worst = std::max(worst, r.state_bytes);
      std::printf("%s %s: optimizer state per rank %lld bytes (one process %lld): %.3f of one process\n",
                  layout.c_str(), bf16 ? "bf16" : "fp32", static_cast<long long>(worst),
                  static_cast<long long>(one.state_bytes), static_cast<double>(worst) / one.state_bytes);
      // Every rank holds at most 1/ranks of the one-process state, plus padding.
      const double bound = 1.0 / static_cast<double>(ranks.size()) + 0.01;
      EXPECT_LE(static_cast<double>(worst) / one.state_bytes, bound) << layout;
    }
  }
}

}  // namespace
}  // namespace moerl
