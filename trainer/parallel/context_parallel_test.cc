// Context parallelism against one process, ranks as threads over Gloo.
// The split covers every input row exactly once with equal, divisible parts;
// context-parallel attention on packed ragged sequences (one shorter than
// 2cp) gives PackedCausalAttention's outputs and q/k/v gradients for cp 2
// and 4; the tiny Qwen3-MoE (trainer/model/testdata/moe) under c2,
// (attn:c2|ffn:e2), (attn:d2c2|ffn:d2e2) and (attn:t2c2|ffn:e4) gives the
// one-process loss, every reduced gradient and the global grad norm within
// 1e-5 relative (also with router replay), and two runs are bit-identical.
#include "trainer/parallel/context_parallel.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <torch/nn/utils/clip_grad.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "common/alloc_mode/alloc_mode.h"
#include "common/status.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/model.h"
#include "trainer/parallel/in_process_ranks.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/testing/rank_testing.h"
#include "trainer/parallel/testing/tiny_lm.h"

namespace moerl {
namespace {

TEST(SplitForContext, EveryRealRowOnceInEqualDivisibleParts) {
  const PackedLayout layout{{7, 3, 12, 1, 5}};  // T = 28, the last 5 rows pad (ModelInput::padding_tokens)
  for (int64_t cp : {2, 4}) {
    for (int64_t multiple : {1, 2, 3}) {
      SCOPED_TRACE("cp " + std::to_string(cp) + " multiple " + std::to_string(multiple));
      std::vector<int> seen(28, 0);
      for (int64_t rank = 0; rank < cp; ++rank) {
        const ContextSplit split = SplitForContext(layout, /*padding_tokens=*/5, cp, rank, multiple);
        ASSERT_EQ(split.rows_per_part % multiple, 0);
        ASSERT_EQ(split.input_row_kn.size(1), split.rows_per_part);
        for (int64_t len : split.segment_len) EXPECT_EQ(len % (2 * cp), 0);
        // Same split seen from every rank; this rank's rows are part_row_t's.
        const at::Tensor rows = split.input_row_kn[rank];
        for (int64_t j = 0; j < split.rows_per_part; ++j) {
          const int64_t row = rows[j].item<int64_t>();
          if (row < 0) continue;
          EXPECT_LT(row, 23) << "padding_tokens rows are padding";
          ++seen[row];
          EXPECT_EQ(split.part_row_t[row].item<int64_t>(), j);
        }
        // The padded order is a permutation.
        EXPECT_TRUE(std::get<0>(split.padded_index_kn.reshape({-1}).sort()).equal(
            at::arange(cp * split.rows_per_part, at::TensorOptions().dtype(at::kLong))));
      }
      for (int64_t row = 0; row < 23; ++row) EXPECT_EQ(seen[row], 1) << "row " << row;
    }
  }
}

TEST(SplitForContext, EmptyInputGivesEmptyParts) {
  const ContextSplit split = SplitForContext(PackedLayout{}, 0, 2, 1, 2);
  EXPECT_EQ(split.rows_per_part, 0);
}

// q, k, v of a packed batch with ragged sequences; the loss weighs every
// output element with a fixed random weight.
struct AttentionCase {
  PackedLayout layout{{7, 3, 12, 1, 9}};  // 1 and 3 are shorter than 2cp for cp = 4
  at::Tensor q_thd, k_tkd, v_tkd, w_thd;
  AttentionCase() {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
    const int64_t t = 32;
    q_thd = at::randn({t, 4, 8}, gen);
    k_tkd = at::randn({t, 2, 8}, gen);
    v_tkd = at::randn({t, 2, 8}, gen);
    w_thd = at::randn({t, 4, 8}, gen);
  }
};

TEST(ContextParallelAttention, MatchesUnsplitAttentionWithGradients) {
  const AttentionCase c;
  at::Tensor q = c.q_thd.clone().requires_grad_(), k = c.k_tkd.clone().requires_grad_(),
             v = c.v_tkd.clone().requires_grad_();
  const at::Tensor out_ref = PackedCausalAttention(q, k, v, c.layout, nullptr, 0);
  (out_ref * c.w_thd).sum().backward();
  for (int cp : {2, 4}) {
    SCOPED_TRACE("cp " + std::to_string(cp));
    ParallelDims dims;
    dims.cp = cp;
    std::vector<double> errors(cp, 1.0);
    ASSERT_TRUE(RunInProcessRanks(
                    dims,
                    [&](const ParallelState& state) -> absl::Status {
                      const int64_t r = state.group(RankGroupKind::kContext).rank();
                      const ContextSplit split = SplitForContext(c.layout, 0, cp, r, 1);
                      const at::Tensor rows = split.input_row_kn[r];
                      const at::Tensor real = rows.ge(0).nonzero().reshape({-1});
                      const at::Tensor src = rows.index_select(0, real);
                      auto take = [&](const at::Tensor& full) {
                        at::Tensor part = at::zeros({split.rows_per_part, full.size(1), full.size(2)});
                        part.index_copy_(0, real, full.index_select(0, src));
                        return part.requires_grad_();
                      };
                      at::Tensor ql = take(c.q_thd), kl = take(c.k_tkd), vl = take(c.v_tkd);
                      const at::Tensor out = ContextParallelAttention(ql, kl, vl, split,
                                                                      state.group(RankGroupKind::kContext));
                      (out.index_select(0, real) * c.w_thd.index_select(0, src)).sum().backward();
                      double worst = 0;
                      worst = std::max(worst, MaxRelativeError(out.detach().index_select(0, real),
                                                               out_ref.detach().index_select(0, src)));
                      worst = std::max(worst, MaxRelativeError(ql.grad().index_select(0, real),
                                                               q.grad().index_select(0, src)));
                      worst = std::max(worst, MaxRelativeError(kl.grad().index_select(0, real),
                                                               k.grad().index_select(0, src)));
                      worst = std::max(worst, MaxRelativeError(vl.grad().index_select(0, real),
                                                               v.grad().index_select(0, src)));
                      errors[r] = worst;
                      return absl::OkStatus();
                    },
                    TestRankOptions())
                    .ok());
    for (int r = 0; r < cp; ++r) {
      EXPECT_LE(errors[r], 1e-5) << "rank " << r;
      std::printf("attention cp %d rank %d: worst output / q,k,v gradient (max element / max) %.3e\n", cp, r,
                  errors[r]);
    }
  }
}

// The whole model: lengths with a sequence shorter than 2cp and shards
// whose lengths are not multiples of 2cp or tp.
std::vector<std::vector<int64_t>> Batch(int64_t vocab) { return LcgSequences(vocab, {7, 3, 9, 5, 2}); }

// Router replay: per MoE layer, forced experts for the odd positions of
// every sequence (a function of the sequence's index in the batch and the
// position), -1 (the router's choice) for the even ones.
std::vector<at::Tensor> ForcedRoutes(const ModelConfig& config, const std::vector<size_t>& indices,
                                     const std::vector<std::vector<int64_t>>& seqs) {
  std::vector<at::Tensor> out;
  for (int64_t l = 0; l < config.NumMoeLayers(); ++l) {
    std::vector<int64_t> ids;
    for (size_t i : indices) {
      for (size_t p = 0; p < seqs[i].size(); ++p) {
        const int64_t first = static_cast<int64_t>(i * 7 + p * 3 + l) % config.num_experts;
        ids.push_back(p % 2 == 1 ? first : -1);
        ids.push_back(p % 2 == 1 ? (first + 1) % config.num_experts : -1);
      }
    }
    out.push_back(at::tensor(ids, at::TensorOptions().dtype(at::kLong)).reshape({-1, 2}));
  }
  return out;
}

struct Result {
  double loss = 0, grad_norm = 0;
  std::map<std::string, at::Tensor> grads;
  std::map<std::string, at::Tensor> want;  // the reference's gradients, this rank's parts
};

Result Reference(bool replay) {
  ModelConfig config = TinyMoeConfig();
  const auto seqs = Batch(config.vocab_size);
  auto model = std::make_shared<Qwen3Model>(config);
  model->InitializeWeights(1);
  ModelInput in = ModelInput::Pack(seqs);
  if (replay) in.forced_topk_ids_tk = ForcedRoutes(config, {0, 1, 2, 3, 4}, seqs);
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

const Result& TheReference(bool replay) {
  static const Result reference = Reference(false), with_replay = Reference(true);
  return replay ? with_replay : reference;
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

// Every rank runs its data shard's whole packed micro-batch through the
// model's seams (the trainer's way): the installed token scorer returns all
// log-probs on every cp rank, so the CE share divides by the rows summed
// over dp and is replicated over cp; the router shares are summed over
// tp-dp-cp.
std::vector<Result> Parallel(const std::string& allocation, bool replay = false) {
  const Result& reference = TheReference(replay);
  const ParallelDims dims = LayoutDims(allocation);
  ModelConfig config = TinyMoeConfig();
  const auto seqs = Batch(config.vocab_size);
  std::vector<Result> results(dims.WorldSize());
  absl::Status status = RunInProcessRanks(
      dims,
      [&](const ParallelState& state) -> absl::Status {
        auto model = std::make_shared<Qwen3Model>(config);
        MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state));
        model->InitializeWeights(1);
        std::vector<std::vector<int64_t>> mine;
        std::vector<size_t> indices;
        for (size_t i = state.data_shard(); i < seqs.size(); i += state.num_data_shards()) {
          mine.push_back(seqs[i]);
          indices.push_back(i);
        }
        ModelInput in = ModelInput::Pack(mine);
        if (replay) in.forced_topk_ids_tk = ForcedRoutes(config, indices, seqs);
        ModelOutput out = model->Forward(in);
        at::Tensor rows, targets;
        NextTokenTargets(in, &rows, &targets);
        TokenLogProbs lp = model->token_scorer()(out.hidden_td, model->lm_head_weight(), rows, targets, 1.0,
                                                 /*with_entropy=*/false);
        at::Tensor ce_share = -lp.logprobs_n.sum() / static_cast<double>(NextTokenRows(seqs));
        at::Tensor router_share = out.aux_loss * config.router_aux_loss_coef + out.z_loss * config.router_z_loss_coef;
        (ce_share + router_share).backward();
        MOERL_RETURN_IF_ERROR(GradientReducer(state).Reduce(*model));
        Result& r = results[state.rank()];
        r.grad_norm = GlobalGradNorm(*model, state);
        at::Tensor ce = ce_share.detach().to(at::kDouble).reshape({1}).clone();
        state.group(RankGroupKind::kData).AllReduceSum(ce);
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

void CheckLayout(const std::string& allocation, bool replay = false) {
  SCOPED_TRACE(allocation);
  const Result& reference = TheReference(replay);
  std::vector<Result> ranks = Parallel(allocation, replay);
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
    std::printf("%s%s rank %zu: loss %.3e, grad norm %.3e, worst gradient (max element / max of tensor) %.3e\n",
                allocation.c_str(), replay ? " (replay)" : "", r, std::abs(ranks[r].loss - reference.loss) / std::abs(reference.loss),
                std::abs(ranks[r].grad_norm - reference.grad_norm) / reference.grad_norm, worst);
  }
}

TEST(ContextParallelQwen3, ContextParallelMatchesOneProcess) { CheckLayout("megatron:d1c2"); }

TEST(ContextParallelQwen3, ContextAndExpertParallelMatchOneProcess) { CheckLayout("megatron:(attn:c2|ffn:e2)"); }

TEST(ContextParallelQwen3, DataContextAndExpertParallelMatchOneProcess) {
  CheckLayout("megatron:(attn:d2c2|ffn:d2e2)");
}

TEST(ContextParallelQwen3, TensorContextAndExpertParallelMatchOneProcess) {
  CheckLayout("megatron:(attn:t2c2|ffn:e4)");
}

// Each rank replays the routes of its part's rows (the split takes them
// with the tokens; under tp + sp each shard its rows of the part).
TEST(ContextParallelQwen3, RouterReplayMatchesOneProcess) {
  double change = 0;
  for (const auto& [name, grad] : TheReference(true).grads) {
    change = std::max(change, MaxRelativeError(grad, TheReference(false).grads.at(name)));
  }
  EXPECT_GT(change, 1e-2) << "the forced routes change nothing";
  std::printf("replay vs none: largest gradient change (max element / max of tensor) %.3e\n", change);
  CheckLayout("megatron:(attn:c2|ffn:e2)", /*replay=*/true);
  CheckLayout("megatron:(attn:t2c2|ffn:e4)", /*replay=*/true);
}

TEST(ContextParallelQwen3, TwoRunsAreBitIdentical) {
  std::vector<Result> a = Parallel("megatron:(attn:c2|ffn:e2)");
  std::vector<Result> b = Parallel("megatron:(attn:c2|ffn:e2)");
  ASSERT_EQ(a.size(), b.size());
  for (size_t r = 0; r < a.size(); ++r) {
    EXPECT_EQ(a[r].loss, b[r].loss);
    for (const auto& [name, t] : a[r].grads) EXPECT_TRUE(t.equal(b[r].grads.at(name))) << name;
  }
}

TEST(ContextParallelQwen3, ContextWithPipelineParallelIsUnimplemented) {
  ParallelOptions options = TestRankOptions();
  ParallelizeOptions split;
  split.pipeline_stage_layers = {2, 1};
  absl::Status status = RunInProcessRanks(LayoutDims("megatron:c2p2"), [&](const ParallelState& state) {
    Qwen3Model model(TinyMoeConfig());
    return ParallelizeQwen3(model, state, split);
  }, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_NE(std::string(status.message()).find("cp=2 with pp=2"), std::string::npos) << status;
}

}  // namespace
}  // namespace moerl
