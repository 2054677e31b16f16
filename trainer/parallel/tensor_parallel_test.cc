// Tensor + sequence parallelism against one process, ranks as threads over
// Gloo. The vocabulary-parallel log-probs and entropies (and their input and
// weight gradients) equal ComputeTokenLogProbs; the tiny Qwen3-MoE
// (trainer/model/testdata/moe: 3 layers, the middle one dense, 8 experts,
// top-2, 4 heads, 2 KV heads, vocab 128) under t2, (attn:t2|ffn:e2) and
// (attn:d2t2|ffn:e2), and with expert tensor parallel (attn:d2t2|ffn:d1t2e2),
// gives the one-process loss, every reduced gradient
// (this rank's slice) and the global grad norm within 1e-5 relative; loading
// an HF checkpoint gives each rank its slice; two runs are bit-identical.
#include "trainer/parallel/tensor_parallel.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <gtest/gtest.h>
#include <torch/nn/utils/clip_grad.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/status.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/model.h"
#include "trainer/parallel/in_process_ranks.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/testing/rank_testing.h"
#include "trainer/parallel/testing/tiny_lm.h"

namespace moerl {
namespace {

TEST(VocabParallelTokenLogProbs, MatchesComputeTokenLogProbsWithGradients) {
  constexpr int64_t kN = 6, kD = 16, kV = 12;
  constexpr double kTemperature = 0.7;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor h_nd = at::randn({kN, kD}, gen, f32);
  const at::Tensor w_vd = at::randn({kV, kD}, gen, f32);
  const at::Tensor y_n = at::randint(kV, {kN}, gen, at::TensorOptions().dtype(at::kLong));
  const at::Tensor a_n = at::randn({kN}, gen, f32), b_n = at::randn({kN}, gen, f32);
  // Reference: one process.
  at::Tensor h = h_nd.clone().requires_grad_(), w = w_vd.clone().requires_grad_();
  TokenLogProbs want = ComputeTokenLogProbs(h, w, y_n, kTemperature);
  ((want.logprobs_n * a_n).sum() + (want.entropy_n * b_n).sum()).backward();
  for (int tp : {2, 3}) {
    SCOPED_TRACE("tp " + std::to_string(tp));
    ParallelDims dims;
    dims.tp = tp;
    std::vector<double> errors(tp, 1.0);
    ASSERT_TRUE(RunInProcessRanks(
                    dims,
                    [&](const ParallelState& state) -> absl::Status {
                      const ProcessGroup& group = state.group(RankGroupKind::kTensor);
                      const int64_t v = kV / tp, first = group.rank() * v;
                      at::Tensor hr = h_nd.clone().requires_grad_();
                      at::Tensor wr = w_vd.narrow(0, first, v).clone().requires_grad_();
                      TokenLogProbs got = VocabParallelTokenLogProbs(CopyToTensorParallel(hr, group), wr, y_n, first,
                                                                     kTemperature, group);
                      ((got.logprobs_n * a_n).sum() + (got.entropy_n * b_n).sum()).backward();
                      errors[state.rank()] = std::max(
                          {MaxRelativeError(got.logprobs_n, want.logprobs_n.detach()),
                           MaxRelativeError(got.entropy_n, want.entropy_n.detach()),
                           MaxRelativeError(hr.grad(), h.grad()),
                           MaxRelativeError(wr.grad(), w.grad().narrow(0, first, v))});
                      return absl::OkStatus();
                    },
                    TestRankOptions())
                    .ok());
    for (int r = 0; r < tp; ++r) {
      std::printf("vocab-parallel log-probs tp %d rank %d: worst relative error %.3e\n", tp, r, errors[r]);
      EXPECT_LE(errors[r], 1e-5) << "rank " << r;
    }
  }
}

ModelConfig TinyMoe() { return TinyMoeConfig(); }

// Lengths such that every data shard's token count divides by tp = 2.
std::vector<std::vector<int64_t>> Batch(int64_t vocab) { return LcgSequences(vocab, {7, 5, 9, 5}); }

struct Result {
  double loss = 0, grad_norm = 0;
  std::map<std::string, at::Tensor> grads;
  std::map<std::string, at::Tensor> want;  // the reference's gradients, this rank's parts
};

Result Reference() {
  ModelConfig config = TinyMoe();
  const auto seqs = Batch(config.vocab_size);
  auto model = std::make_shared<Qwen3Model>(config);
  model->InitializeWeights(1);
  const ModelInput in = ModelInput::Pack(seqs);
  ModelOutput out = model->Forward(in);
  at::Tensor rows, targets;
  NextTokenTargets(in, &rows, &targets);
  TokenLogProbs lp = ComputeTokenLogProbs(out.hidden_td.index_select(0, rows), model->lm_head_weight(), targets,
                                          1.0, /*with_entropy=*/false);
  at::Tensor loss = -lp.logprobs_n.sum() / static_cast<double>(NextTokenRows(seqs)) +
                    out.aux_loss * config.router_aux_loss_coef + out.z_loss * config.router_z_loss_coef;
  loss.backward();
  Result r;
  r.loss = loss.item<double>();
  r.grad_norm = torch::nn::utils::clip_grad_norm_(model->parameters(), 1e9);
  for (auto& p : model->named_parameters()) r.grads[p.key()] = p.value().grad().clone();
  return r;
}

// This rank's part of each full-model tensor in `full` (by parameter name).
std::map<std::string, at::Tensor> HeldParts(Qwen3Model& model, const std::map<std::string, at::Tensor>& full) {
  std::map<std::string, at::Tensor> out;
  for (const auto& item : model.named_parameters()) out[item.key()] = full.at(item.key());
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (auto w = std::dynamic_pointer_cast<WeightModule>(item.value()); w && w->sliced()) {
      const std::string name = item.key() + ".weight";
      out[name] = out[name].narrow(w->slice_dim(), w->slice_start(), w->weight.size(w->slice_dim()));
    }
  }
  for (size_t l = 0; l < model.layers().size(); ++l) {
    if (!model.layers()[l]->moe) continue;
    const Experts& e = *model.layers()[l]->moe->experts;
    const std::string p = "model.layers." + std::to_string(l) + ".mlp.experts.";
    out[p + "gate_up_proj"] = e.HeldPart(out[p + "gate_up_proj"], /*gate_up=*/true);
    out[p + "down_proj"] = e.HeldPart(out[p + "down_proj"], /*gate_up=*/false);
  }
  return out;
}

const Result& TheReference() {
  static const Result reference = Reference();
  return reference;
}

std::vector<Result> Parallel(const std::string& allocation) {
  const Result& reference = TheReference();
  const ParallelDims dims = LayoutDims(allocation);
  ModelConfig config = TinyMoe();
  const auto seqs = Batch(config.vocab_size);
  std::vector<Result> results(dims.WorldSize());
  absl::Status status = RunInProcessRanks(
      dims,
      [&](const ParallelState& state) -> absl::Status {
        auto model = std::make_shared<Qwen3Model>(config);
        MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state));
        model->InitializeWeights(1);
        std::vector<std::vector<int64_t>> mine;
        for (size_t i = state.data_shard(); i < seqs.size(); i += state.num_data_shards()) mine.push_back(seqs[i]);
        const ProcessGroup& tp = state.group(RankGroupKind::kTensor);
        const ModelInput in = ModelInput::Pack(mine);
        ModelOutput out = model->Forward(in);
        at::Tensor x_td = GatherSequence(out.hidden_td, tp);  // [T/tp, D] -> [T, D]
        at::Tensor rows, targets;
        NextTokenTargets(in, &rows, &targets);
        const int64_t first_row = tp.rank() * (config.vocab_size / tp.size());
        TokenLogProbs lp = VocabParallelTokenLogProbs(x_td.index_select(0, rows), model->lm_head_weight(), targets,
                                                      first_row, 1.0, tp, /*with_entropy=*/false);
        at::Tensor ce_share = -lp.logprobs_n.sum() / static_cast<double>(NextTokenRows(seqs));
        at::Tensor router_share = out.aux_loss * config.router_aux_loss_coef + out.z_loss * config.router_z_loss_coef;
        (ce_share + router_share).backward();
        MOERL_RETURN_IF_ERROR(GradientReducer(state).Reduce(*model));
        Result& r = results[state.rank()];
        r.grad_norm = GlobalGradNorm(*model, state);
        // The objective: CE shares summed over dp-cp (identical over tp),
        // router shares over tp-dp-cp.
        at::Tensor ce = ce_share.detach().to(at::kDouble).reshape({1}).clone();
        state.group(RankGroupKind::kDataContext).AllReduceSum(ce);
        at::Tensor router = router_share.detach().to(at::kDouble).reshape({1}).clone();
        state.group(RankGroupKind::kTensorDataContext).AllReduceSum(router);
        r.loss = ce.item<double>() + router.item<double>();
        for (auto& p : model->named_parameters()) r.grads[p.key()] = p.value().grad().clone();
        r.want = HeldParts(*model, reference.grads);
        return absl::OkStatus();
      },
      TestRankOptions());
  EXPECT_TRUE(status.ok()) << status;
  return results;
}

void CheckLayout(const std::string& allocation) {
  SCOPED_TRACE(allocation);
  const Result& reference = TheReference();
  std::vector<Result> ranks = Parallel(allocation);
  for (size_t r = 0; r < ranks.size(); ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    EXPECT_NEAR(ranks[r].loss, reference.loss, 1e-5 * std::abs(reference.loss));
    EXPECT_NEAR(ranks[r].grad_norm, reference.grad_norm, 1e-5 * reference.grad_norm);
    EXPECT_EQ(ranks[r].grads.size(), reference.grads.size());
    double worst = 0;
    for (const auto& [name, grad] : ranks[r].grads) {
      const at::Tensor& want = ranks[r].want.at(name);
      ASSERT_EQ(grad.sizes(), want.sizes()) << name;
      const double err = MaxRelativeError(grad, want);
      EXPECT_LE(err, 1e-5) << name;
      worst = std::max(worst, err);
    }
    std::printf("%s rank %zu: loss %.3e, grad norm %.3e, worst gradient (max element / max of tensor) %.3e\n",
                allocation.c_str(), r, std::abs(ranks[r].loss - reference.loss) / std::abs(reference.loss),
                std::abs(ranks[r].grad_norm - reference.grad_norm) / reference.grad_norm, worst);
  }
}

TEST(TensorParallelQwen3, TensorParallelMatchesOneProcess) { CheckLayout("megatron:t2"); }

TEST(TensorParallelQwen3, TensorAndExpertParallelMatchOneProcess) { CheckLayout("megatron:(attn:t2|ffn:e2)"); }

TEST(TensorParallelQwen3, DataTensorAndExpertParallelMatchOneProcess) {
  CheckLayout("megatron:(attn:d2t2|ffn:e2)");
}

TEST(TensorParallelQwen3, TwoRunsAreBitIdentical) {
  std::vector<Result> a = Parallel("megatron:(attn:t2|ffn:e2)");
  std::vector<Result> b = Parallel("megatron:(attn:t2|ffn:e2)");
  ASSERT_EQ(a.size(), b.size());
  for (size_t r = 0; r < a.size(); ++r) {
    EXPECT_EQ(a[r].loss, b[r].loss);
    for (const auto& [name, t] : a[r].grads) EXPECT_TRUE(t.equal(b[r].grads.at(name))) << name;
  }
}

TEST(TensorParallelQwen3, ExpertTensorParallelMatchesOneProcess) { CheckLayout("megatron:(attn:d2t2|ffn:d1t2e2)"); }

TEST(TensorParallelQwen3, ExpertTensorParallelOnOtherRanksThanTpIsUnimplemented) {
  absl::Status status = RunInProcessRanks(LayoutDims("megatron:(attn:d2t2|ffn:t4)"), [&](const ParallelState& state) {
    Qwen3Model model(TinyMoe());
    return ParallelizeQwen3(model, state);
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
}

// tp inside pipeline stages: each stage keeps its layers, each tp rank its
// heads of them and its vocabulary rows where the stage holds the embedding
// or the LM head (the trainer-level comparison is trainer_ranks_test's
// (attn:d1p2t2|ffn:d1p2e2)).
TEST(TensorParallelQwen3, TensorParallelSlicesEachPipelineStage) {
  ModelConfig config = TinyMoe();
  config.num_hidden_layers = 4;
  absl::Status status = RunInProcessRanks(LayoutDims("megatron:t2p2"), [&](const ParallelState& state) -> absl::Status {
    Qwen3Model model(config);
    MOERL_RETURN_IF_ERROR(ParallelizeQwen3(model, state));
    const bool first = state.coordinates().pp == 0;
    const int64_t q_rows = model.layers()[0]->self_attn->q_proj->weight.size(0);
    if (model.layers().size() != 2 || model.first_layer() != (first ? 0 : 2) ||
        q_rows != config.num_attention_heads / 2 * config.head_dim || model.holds_embedding() != first ||
        (first ? model.embed_tokens() : *model.lm_head()).weight.size(0) != config.vocab_size / 2) {
      return absl::InternalError(absl::StrCat("rank ", state.rank(), ": layers from ", model.first_layer(), " x ",
                                              model.layers().size(), ", q_proj rows ", q_rows));
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(status.ok()) << status;
}

TEST(TensorParallelQwen3, VocabularyThatDoesNotSplitIsInvalid) {
  ModelConfig config = TinyMoe();
  config.vocab_size = 127;
  absl::Status status = RunInProcessRanks(LayoutDims("megatron:t2"), [&](const ParallelState& state) {
    Qwen3Model model(config);
    return ParallelizeQwen3(model, state);
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(std::string(status.message()).find("vocab_size 127"), std::string::npos) << status;
}

TEST(TensorParallelQwen3, LoadingAnHfCheckpointGivesEachRankItsSlice) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr);
  const std::string dir = std::string(tmp) + "/tp_ckpt";
  ModelConfig config = TinyMoe();
  auto full = std::make_shared<Qwen3Model>(config);
  full->InitializeWeights(3);
  ASSERT_TRUE(SaveHfCheckpoint(*full, dir, at::kFloat, 1ull << 30).ok());
  std::map<std::string, at::Tensor> want;
  for (auto& p : full->named_parameters()) want[p.key()] = p.value().detach();
  for (const char* layout : {"megatron:(attn:t2|ffn:e2)", "megatron:(attn:t2|ffn:t2)"}) {
    SCOPED_TRACE(layout);
    absl::Status status = RunInProcessRanks(LayoutDims(layout), [&](const ParallelState& state) {
      auto model = std::make_shared<Qwen3Model>(config);
      MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state));
      MOERL_RETURN_IF_ERROR(LoadHfWeights(dir, model.get()));
      const auto parts = HeldParts(*model, want);
      for (auto& p : model->named_parameters()) {
        if (!p.value().equal(parts.at(p.key())))
          return absl::InternalError("rank " + std::to_string(state.rank()) + " " + p.key());
      }
      absl::Status save = SaveHfCheckpoint(*model, dir + "_" + std::to_string(state.rank()), at::kFloat, 1ull << 30);
      if (save.code() != absl::StatusCode::kFailedPrecondition) {
        return absl::InternalError("saving a sharded model: " + save.ToString());
      }
      return absl::OkStatus();
    });
    EXPECT_TRUE(status.ok()) << status;
  }
}

}  // namespace
}  // namespace moerl
