// Replays the cases tools/trainer/areal_oracle.py wrote with AReaL 1.0.4's own
// functions through moerl's Normalize, ComputeAdvantages and PpoActorLoss, and
// fails (exit code) on any difference above 1e-6 (absolute plus relative):
// normalised values; advantages, KL and total rewards, rolled mask and
// log-probs; the micro-batch loss, its gradient wrt logp, and every statistic
// grpo_loss_fn records (avg/min/max of stats, sums of denominators, the
// rs_filtered_fraction scalar).
//
//   areal_oracle_compare /tmp/areal_oracle.safetensors
//
// Intended difference: AReaL derives the no-EOS flag as len == L; moerl takes
// it as an input, which the generator fills the same way.
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/abs.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "common/safetensors/safetensors.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "trainer/advantages.h"
#include "trainer/model/fixture.h"
#include "trainer/ppo_loss.h"

namespace moerl {
namespace {

constexpr double kTol = 1e-6;

std::string g_fixture_path;

struct Fixture {
  std::unique_ptr<OracleFixture> tensors;
  nlohmann::json cases;
};

const Fixture& Load() {
  static Fixture* fx = [] {
    auto* f = new Fixture();
    auto tensors = OracleFixture::Open(g_fixture_path);
    if (!tensors.ok()) {
      std::fprintf(stderr, "%s\n", std::string(tensors.status().message()).c_str());
      std::exit(2);
    }
    f->tensors = std::move(*tensors);
    auto file = SafetensorsFile::Open(g_fixture_path);
    f->cases = nlohmann::json::parse(file.value()->metadata().at("cases"));
    return f;
  }();
  return *fx;
}

at::Tensor Get(const std::string& c, const std::string& name) {
  const std::string full = c + "/" + name;
  return Load().tensors->Has(full) ? Load().tensors->Get(full) : at::Tensor();
}

// max |a - b| / (1 + |b|) over the elements.
double MaxDiff(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  const at::Tensor x = a.detach().to(at::kDouble), y = b.detach().to(at::kDouble);
  return ((x - y).abs() / (y.abs() + 1.0)).max().item<double>();
}

bool Close(double a, double b) { return std::fabs(a - b) <= kTol * (1.0 + std::fabs(b)); }

NormConfig ParseNorm(const nlohmann::json& j) {
  NormConfig n;
  n.mean_level = j.at("mean_level").get<std::string>();
  n.std_level = j.at("std_level").get<std::string>();
  n.mean_leave1out = j.at("mean_leave1out").get<bool>();
  n.std_unbiased = j.at("std_unbiased").get<bool>();
  n.eps = j.at("eps").get<double>();
  n.group_size = j.at("group_size").get<int64_t>();
  return n;
}

std::optional<NormConfig> ParseOptionalNorm(const nlohmann::json& j) {
  if (j.is_null()) return std::nullopt;
  return ParseNorm(j);
}

std::optional<double> OptionalDouble(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  return j.at(key).get<double>();
}

int CountKind(const std::string& kind) {
  int n = 0;
  for (const auto& c : Load().cases) n += c.at("kind") == kind;
  return n;
}

TEST(ArealOracle, FixtureHasEveryKind) {
  EXPECT_GE(CountKind("norm"), 50);
  EXPECT_GE(CountKind("adv"), 10);
  EXPECT_GE(CountKind("loss"), 100);
}

TEST(ArealOracle, NormalizeMatchesNormalization) {
  double worst = 0;
  for (const auto& c : Load().cases) {
    if (c.at("kind") != "norm") continue;
    const std::string name = c.at("name");
    const at::Tensor out = Normalize(Get(name, "x"), Get(name, "mask"), ParseNorm(c.at("config")));
    const double d = MaxDiff(out, Get(name, "out"));
    worst = std::max(worst, d);
    EXPECT_LE(d, kTol) << name << " config " << c.at("config").dump();
  }
  std::printf("Normalize vs AReaL Normalization: max diff %.3g\n", worst);
}

TEST(ArealOracle, ComputeAdvantagesMatchesPpoActor) {
  double worst = 0;
  for (const auto& c : Load().cases) {
    if (c.at("kind") != "adv") continue;
    const std::string name = c.at("name");
    const auto& j = c.at("config");
    AdvantageConfig cfg;
    cfg.reward_bias = j.at("reward_bias");
    cfg.reward_scaling = j.at("reward_scaling");
    cfg.reward_clip = j.at("reward_clip");
    cfg.reward_norm = ParseOptionalNorm(j.at("reward_norm"));
    cfg.adv_norm = ParseOptionalNorm(j.at("adv_norm"));
    cfg.kl_ctl = j.at("kl_ctl");
    cfg.kl_estimator = j.at("kl_estimator");
    cfg.discount = j.at("discount");
    cfg.gae_lambda = j.at("gae_lambda");
    cfg.mask_no_eos_with_zero = j.at("mask_no_eos_with_zero");
    AdvantageBatch batch;
    batch.rewards_b = Get(name, "rewards");
    batch.loss_mask_bl = Get(name, "loss_mask");
    batch.behave_logp_bl = Get(name, "behave");
    batch.ref_logp_bl = Get(name, "ref");
    batch.seqlens_b = Get(name, "seqlens");
    batch.no_eos_b = Get(name, "no_eos").to(at::kBool);
    auto adv = ComputeAdvantages(batch, cfg);
    ASSERT_TRUE(adv.ok()) << name << ": " << adv.status();
    const std::pair<at::Tensor, const char*> checks[] = {
        {adv->advantages_bl, "advantages"},  {adv->kl_rewards_bl, "kl_rewards"},
        {adv->tot_rewards_bl, "tot_rewards"}, {adv->loss_mask_bl, "rolled_mask"},
        {adv->behave_logp_bl, "rolled_logp"},
    };
    for (const auto& [ours, key] : checks) {
      const double d = MaxDiff(ours, Get(name, key));
      worst = std::max(worst, d);
      EXPECT_LE(d, kTol) << name << "/" << key << " config " << j.dump();
    }
  }
  std::printf("ComputeAdvantages vs AReaL PPOActor._compute_advantages: max diff %.3g\n", worst);
}

TEST(ArealOracle, PpoActorLossMatchesGrpoLossFn) {
  double worst_loss = 0, worst_grad = 0, worst_stat = 0;
  int stats_compared = 0;
  double clipped = 0, dual_clipped = 0, rejected = 0;
  for (const auto& c : Load().cases) {
    if (c.at("kind") != "loss") continue;
    const std::string name = c.at("name");
    const auto& j = c.at("config");
    PpoLossConfig cfg;
    cfg.eps_clip = j.at("eps_clip");
    cfg.eps_clip_higher = OptionalDouble(j, "eps_clip_higher");
    cfg.c_clip = OptionalDouble(j, "c_clip");
    cfg.importance_sampling_level = j.at("importance_sampling_level");
    if (!j.at("rejection_sampling").is_null()) {
      const auto& r = j.at("rejection_sampling");
      RejectionSamplingConfig rs;
      rs.metric = r.at("metric");
      rs.level = r.at("level");
      rs.agg = r.at("agg");
      rs.action = r.at("action");
      rs.lower = OptionalDouble(r, "lower");
      rs.upper = OptionalDouble(r, "upper");
      cfg.rejection_sampling = rs;
    }
    PpoLossInput in;
    in.logp_n = Get(name, "logp").clone().requires_grad_(true);
    in.prox_logp_n = Get(name, "prox");
    in.behave_logp_n = Get(name, "behave");
    in.advantages_n = Get(name, "adv");
    in.loss_mask_n = Get(name, "mask");
    in.entropy_n = Get(name, "entropy");
    in.seq_lens = c.at("seq_lens").get<std::vector<int64_t>>();
    PpoLossResult r = PpoActorLoss(in, cfg);
    const at::Tensor loss = r.loss_sum / std::max(r.n_valid_before, 1.0);
    clipped += r.stats["clipped_tokens"].sum;
    dual_clipped += r.stats["dual_clipped_tokens"].sum;
    if (r.stats.count("rs_filtered_fraction")) rejected += r.stats["rs_filtered_fraction"].sum;
    loss.backward();
    const double dl = std::fabs(loss.item<double>() - c.at("loss").get<double>());
    const double dg = MaxDiff(in.logp_n.grad(), Get(name, "grad"));
    worst_loss = std::max(worst_loss, dl);
    worst_grad = std::max(worst_grad, dg);
    EXPECT_TRUE(Close(loss.item<double>(), c.at("loss"))) << name << " loss " << loss.item<double>()
                                                          << " vs " << c.at("loss") << " " << j.dump();
    EXPECT_LE(dg, kTol) << name << " grad, config " << j.dump();

    // Every AReaL stat outside the compute_logp/ scope must be one of ours.
    for (const auto& [key, value] : c.at("stats").items()) {
      if (key.rfind("compute_logp/", 0) == 0 ||
          (key.size() > 7 && key.substr(key.size() - 7) == "__count")) {
        continue;
      }
      const double want = value.get<double>();
      std::string stat = key, part;
      for (const char* suffix : {"/avg", "/min", "/max"}) {
        const std::string s(suffix);
        if (key.size() > s.size() && key.substr(key.size() - s.size()) == s) {
          stat = key.substr(0, key.size() - s.size());
          part = s.substr(1);
        }
      }
      auto it = r.stats.find(stat);
      if (it == r.stats.end()) {
        ADD_FAILURE() << name << ": AReaL logs " << key << ", moerl has no " << stat;
        continue;
      }
      const StatAccumulator& acc = it->second;
      double got = acc.sum;  // denominators: the SUM
      if (part == "avg") got = acc.Mean();
      if (part == "min") got = acc.min;
      if (part == "max") got = acc.max;
      if (stat == "rs_filtered_fraction") got = acc.Mean();
      worst_stat = std::max(worst_stat, std::fabs(got - want) / (1.0 + std::fabs(want)));
      ++stats_compared;
      EXPECT_TRUE(Close(got, want)) << name << ": " << key << " = " << got << ", AReaL " << want
                                    << "; config " << j.dump();
    }
    // And a stat AReaL leaves out (empty mask) must be empty here too.
    for (const auto& [stat, acc] : r.stats) {
      const bool is_denominator = c.at("stats").contains(stat);
      if (!is_denominator && !acc.empty()) {
        EXPECT_TRUE(c.at("stats").contains(stat + "/avg")) << name << ": moerl's " << stat
                                                           << " is not in AReaL's stats";
      }
    }
  }
  EXPECT_GT(stats_compared, 1000);
  // The cases must reach every branch: clipping, dual clipping, rejection.
  EXPECT_GT(clipped, 0);
  EXPECT_GT(dual_clipped, 0);
  EXPECT_GT(rejected, 0);
  std::printf("PpoActorLoss vs AReaL grpo_loss_fn: max diff loss %.3g, grad %.3g, stats %.3g (%d values)\n",
              worst_loss, worst_grad, worst_stat, stats_compared);
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ORACLE.safetensors\n", argv[0]);
    return 2;
  }
  moerl::g_fixture_path = argv[1];
  return RUN_ALL_TESTS();
}
