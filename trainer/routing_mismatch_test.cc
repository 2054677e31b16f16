// Routing-mismatch statistics and the drop: routes equal to the trainer's
// own give 0; routes altered on known slots give exactly the known
// fractions; the threshold masks exactly the tokens above it, and the
// gradient equals the PPO loss with those tokens masked by hand.
#include "trainer/routing_mismatch.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <random>
#include <set>

#include "gtest/gtest.h"
#include "trainer/grpo_objective.h"
#include "trainer/model/hf_weights.h"
#include "trainer/ppo_loss.h"
#include "trainer/train_step.h"

namespace moerl {
namespace {

constexpr char kMoeDir[] = "trainer/model/testdata/moe";  // 3 layers, MoE layers 0 and 2, top-2 of 8

std::shared_ptr<Qwen3Model> LoadTiny() {
  auto model = LoadHfModel(kMoeDir);
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

// Two groups of three scored sequences (vocab 128), without routes.
std::vector<TrainSequence> Sequences(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TrainSequence> seqs;
  for (int i = 0; i < 6; ++i) {
    TrainSequence s;
    const int p = 3 + static_cast<int>(rng() % 5), o = 4 + static_cast<int>(rng() % 7);
    for (int t = 0; t < p + o; ++t) s.tokens.push_back(static_cast<int64_t>(rng() % 128));
    s.prompt_len = p;
    for (int t = 0; t < o; ++t) s.behave_logp.push_back(-4.0f - 0.1f * static_cast<float>(rng() % 10));
    s.reward = (i % 3 == 0) ? 1.0 : 0.0;
    s.group_id = i < 3 ? "g0" : "g1";
    seqs.push_back(std::move(s));
  }
  return seqs;
}

IndexList All(const std::vector<TrainSequence>& seqs) {
  IndexList all;
  for (size_t i = 0; i < seqs.size(); ++i) all.push_back(static_cast<int64_t>(i));
  return all;
}

// Gives every sequence the routes the model's own routers pick (no replay).
void SetOwnRoutes(Qwen3Model& model, std::vector<TrainSequence>* seqs) {
  at::NoGradGuard no_grad;
  PolicyOutput out = PolicyForward(model, *seqs, All(*seqs), PolicyForwardOptions());
  const int64_t layers = model.config().NumMoeLayers(), k = model.config().num_experts_per_tok;
  ASSERT_EQ(static_cast<int64_t>(out.router_topk_ids_tk.size()), layers);
  int64_t row0 = 0;
  for (TrainSequence& s : *seqs) {
    s.routed_layers = layers;
    s.routed_top_k = k;
    s.routed_experts.clear();
    for (int64_t j = 0; j < s.OutputLen(); ++j) {
      for (int64_t l = 0; l < layers; ++l) {
        for (int64_t e = 0; e < k; ++e) {
          s.routed_experts.push_back(
              static_cast<int32_t>(out.router_topk_ids_tk[l][row0 + s.prompt_len + j][e].item<int64_t>()));
        }
      }
    }
    row0 += s.Length();
  }
}

// Replaces, in the last MoE layer only (so that replaying the altered routes
// changes no router's input), `missed[b][j]` of token j's k experts by
// experts outside the token's own top-k. Returns missed[b][j].
std::vector<std::vector<int>> AlterLastLayer(const ModelConfig& config, std::vector<TrainSequence>* seqs) {
  const int64_t layers = config.NumMoeLayers(), k = config.num_experts_per_tok;
  std::vector<std::vector<int>> missed;
  for (size_t b = 0; b < seqs->size(); ++b) {
    TrainSequence& s = (*seqs)[b];
    missed.emplace_back();
    for (int64_t j = 0; j < s.OutputLen(); ++j) {
      const int m = (b + j) % 5 == 0 ? 2 : (b + j) % 3 == 0 ? 1 : 0;
      int32_t* slots = &s.routed_experts[(j * layers + layers - 1) * k];
      const std::set<int32_t> own(slots, slots + k);
      int32_t other = 0;
      for (int e = 0; e < m; ++e) {
        while (own.count(other) > 0) ++other;
        slots[e] = other++;
      }
      missed.back().push_back(m);
    }
  }
  return missed;
}

GrpoOptions Options(bool replay, std::optional<double> threshold) {
  GrpoOptions o;
  o.router_replay = replay;
  o.routing_mismatch_threshold = threshold;
  return o;
}

TEST(RoutingMismatch, OwnRoutesGiveZero) {
  auto model = LoadTiny();
  std::vector<TrainSequence> seqs = Sequences(1);
  SetOwnRoutes(*model, &seqs);
  int64_t tokens = 0;
  for (const TrainSequence& s : seqs) tokens += s.OutputLen();
  for (bool replay : {false, true}) {
    GrpoObjective objective(Options(replay, 0.0), 0);
    StatsRecorder stats;
    ASSERT_TRUE(objective.Prepare(*model, seqs, &stats).ok());
    const auto flat = stats.Flatten();
    EXPECT_EQ(flat.at("ppo_actor/routing/mismatch_frac/avg"), 0.0) << "replay " << replay;
    EXPECT_EQ(flat.at("ppo_actor/routing/mismatch_frac/max"), 0.0);
    EXPECT_EQ(flat.at("ppo_actor/routing/layer0/mismatch_frac/max"), 0.0);
    EXPECT_EQ(flat.at("ppo_actor/routing/layer2/mismatch_frac/max"), 0.0);
    EXPECT_EQ(flat.count("ppo_actor/routing/layer1/mismatch_frac/avg"), 0u);  // a dense layer
    EXPECT_EQ(flat.at("ppo_actor/routing/n_tokens"), static_cast<double>(tokens));
    EXPECT_EQ(flat.at("ppo_actor/routing/dropped_tokens"), 0.0);  // threshold 0 keeps exact matches
    EXPECT_EQ(flat.at("ppo_actor/n_valid_tokens"), static_cast<double>(tokens));
  }
}

TEST(RoutingMismatch, NoRoutesNoStats) {
  auto model = LoadTiny();
  GrpoObjective objective(Options(false, 0.0), 0);
  StatsRecorder stats;
  ASSERT_TRUE(objective.Prepare(*model, Sequences(1), &stats).ok());
  EXPECT_EQ(stats.Flatten().count("ppo_actor/routing/mismatch_frac/avg"), 0u);
}

TEST(RoutingMismatch, AlteredRoutesGiveTheKnownFractions) {
  auto model = LoadTiny();
  std::vector<TrainSequence> seqs = Sequences(2);
  SetOwnRoutes(*model, &seqs);
  const std::vector<std::vector<int>> missed = AlterLastLayer(model->config(), &seqs);
  double sum = 0, n = 0, max = 0, min = 1;
  for (const auto& row : missed) {
    for (int m : row) {
      sum += m / 4.0;  // 2 MoE layers x top-2 slots
      n += 1;
      max = std::max(max, m / 4.0);
      min = std::min(min, m / 4.0);
    }
  }
  ASSERT_GT(max, 0.25);
  ASSERT_EQ(min, 0.0);
  for (bool replay : {false, true}) {
    GrpoObjective objective(Options(replay, std::nullopt), 0);
    StatsRecorder stats;
    ASSERT_TRUE(objective.Prepare(*model, seqs, &stats).ok());
    const auto flat = stats.Flatten();
    EXPECT_EQ(flat.at("ppo_actor/routing/mismatch_frac/avg"), sum / n) << "replay " << replay;
    EXPECT_EQ(flat.at("ppo_actor/routing/mismatch_frac/max"), max);
    EXPECT_EQ(flat.at("ppo_actor/routing/mismatch_frac/min"), 0.0);
    EXPECT_EQ(flat.at("ppo_actor/routing/layer0/mismatch_frac/avg"), 0.0);
    EXPECT_EQ(flat.at("ppo_actor/routing/layer2/mismatch_frac/avg"), (2 * sum) / n);
    EXPECT_EQ(flat.at("ppo_actor/routing/layer2/mismatch_frac/max"), 2 * max);
    EXPECT_EQ(flat.at("ppo_actor/routing/dropped_tokens"), 0.0);  // no threshold
  }

  // The library on its own, on one forward: the per-token fractions.
  RoutingMismatch mismatch(model->config());
  at::NoGradGuard no_grad;
  mismatch.Add(seqs, All(seqs), PolicyForward(*model, seqs, All(seqs), PolicyForwardOptions()));
  for (size_t b = 0; b < seqs.size(); ++b) {
    ASSERT_TRUE(mismatch.Has(static_cast<int64_t>(b)));
    at::Tensor frac_n = mismatch.TokenFraction(static_cast<int64_t>(b));
    for (size_t j = 0; j < missed[b].size(); ++j) {
      EXPECT_EQ(frac_n[static_cast<int64_t>(j)].item<double>(), missed[b][j] / 4.0) << b << " " << j;
      EXPECT_EQ(mismatch.Missed(static_cast<int64_t>(b))[1][static_cast<int64_t>(j)].item<int64_t>(),
                missed[b][j]);
    }
  }
}

std::vector<at::Tensor> Grads(Qwen3Model& model) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : model.parameters()) out.push_back(p.grad().clone());
  return out;
}

double MaxDiff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

// The drop's gradient is the PPO loss over the hand-masked tokens.
TEST(RoutingMismatch, ThresholdDropsExactlyTheTokensAboveIt) {
  auto model = LoadTiny();
  std::vector<TrainSequence> seqs = Sequences(3);
  SetOwnRoutes(*model, &seqs);
  const std::vector<std::vector<int>> missed = AlterLastLayer(model->config(), &seqs);
  const IndexList all = All(seqs);
  TrainStepOptions step;
  step.aux_loss_coef = 0.0;  // the routers' losses do not depend on the loss mask
  step.z_loss_coef = 0.0;

  GrpoObjective keep_all(Options(false, std::nullopt), 0);
  StatsRecorder unused;
  ASSERT_TRUE(keep_all.Prepare(*model, seqs, &unused).ok());
  model->zero_grad();
  AccumulateMinibatchGradients(*model, keep_all, seqs, all, step, &unused);
  const std::vector<at::Tensor> unmasked = Grads(*model);

  for (double threshold : {0.0, 0.25}) {
    // By hand: keep token j of sequence b iff missed / 4 <= threshold.
    std::vector<at::Tensor> hand_mask;
    int64_t expect_dropped = 0;
    for (size_t b = 0; b < seqs.size(); ++b) {
      std::vector<float> keep;
      for (int m : missed[b]) {
        keep.push_back(m / 4.0 <= threshold ? 1.0f : 0.0f);
        expect_dropped += m / 4.0 > threshold;
      }
      hand_mask.push_back(keep_all.loss_mask()[b] * at::tensor(keep));
    }
    ASSERT_GT(expect_dropped, 0);

    GrpoObjective drop(Options(false, threshold), 0);
    StatsRecorder stats;
    ASSERT_TRUE(drop.Prepare(*model, seqs, &stats).ok());
    EXPECT_EQ(stats.Flatten().at("ppo_actor/routing/dropped_tokens"), static_cast<double>(expect_dropped));
    for (size_t b = 0; b < seqs.size(); ++b) {
      EXPECT_TRUE(at::equal(drop.loss_mask()[b], hand_mask[b])) << "threshold " << threshold << " seq " << b;
    }
    model->zero_grad();
    AccumulateMinibatchGradients(*model, drop, seqs, all, step, &stats);
    const std::vector<at::Tensor> dropped = Grads(*model);

    // The same forward and loss, the tokens masked by hand, divided by the kept count.
    model->zero_grad();
    PolicyOutput out = PolicyForward(*model, seqs, all, keep_all.ForwardOptions());
    PpoLossInput input;
    input.logp_n = out.logp_n;
    input.prox_logp_n = at::cat(keep_all.prox_logp());
    input.behave_logp_n = input.prox_logp_n;
    input.advantages_n = at::cat(keep_all.advantages());
    input.loss_mask_n = at::cat(hand_mask);
    input.seq_lens = out.output_lens;
    input.entropy_n = out.entropy_n;
    PpoLossResult r = PpoActorLoss(input, PpoLossConfig());
    (r.loss_sum / input.loss_mask_n.sum().item<double>()).backward();
    const std::vector<at::Tensor> hand = Grads(*model);

    EXPECT_LE(MaxDiff(dropped, hand), 1e-6) << "threshold " << threshold;
    EXPECT_GT(MaxDiff(dropped, unmasked), 1e-5) << "threshold " << threshold << ": the drop changed nothing";
  }
}

TEST(RoutingMismatch, BadRoutesAreInvalidArgumentWithoutReplayToo) {
  auto model = LoadTiny();
  std::vector<TrainSequence> seqs = Sequences(4);
  SetOwnRoutes(*model, &seqs);
  seqs[2].routed_experts.pop_back();
  GrpoObjective objective(Options(false, std::nullopt), 0);
  StatsRecorder stats;
  const absl::Status status = objective.Prepare(*model, seqs, &stats);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("sequence 2"), std::string::npos) << status;
}

}  // namespace
}  // namespace moerl
