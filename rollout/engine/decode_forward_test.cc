#include "rollout/engine/decode_forward.h"

#include <ATen/ops/tensor.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <string>

#include "gtest/gtest.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/model.h"

namespace moerl {
namespace {

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

// Prefill ragged prompts and then decode the same tokens with the training
// forward (reference) and with DecodeForward, each into its own cache: hidden
// states, keys and values must agree to float noise at every step.
void ExpectDecodeMatchesTrainingForward(const std::string& dir) {
  auto loaded = LoadHfModel(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  Qwen3Model& model = **loaded;
  ASSERT_TRUE(DecodeForward::Supported(model));
  c10::InferenceMode inference;
  const ModelConfig& c = model.config();
  // 21 prefill rows: more than 16, so the prefill takes the MKL branch.
  const std::vector<std::vector<int64_t>> prompts = {
      {3, 17, 5, 9, 30, 2, 8, 41, 6, 22, 19, 4}, {7}, {11, 12, 13, 14, 15, 16, 17, 18}};
  const int64_t batch = 3, steps = 6;
  KvCache ref = KvCache::Allocate(c.num_hidden_layers, batch, c.num_key_value_heads, 32, c.head_dim, at::kFloat);
  ref.slot_of_segment = {0, 1, 2};
  ModelInput in = ModelInput::Pack(prompts);
  in.cache = &ref;
  at::Tensor prefill_want_td = model.Forward(in).hidden_td;
  // The prefill through DecodeForward: all prompt tokens in one Step, each
  // row in its prompt's slot, in position order.
  KvCache fast = KvCache::Allocate(c.num_hidden_layers, batch, c.num_key_value_heads, 32, c.head_dim, at::kFloat);
  DecodeForward decoder(model, &fast);
  std::vector<int64_t> prefill_tokens, prefill_slots;
  for (int64_t i = 0; i < batch; ++i) {
    prefill_tokens.insert(prefill_tokens.end(), prompts[i].begin(), prompts[i].end());
    prefill_slots.insert(prefill_slots.end(), prompts[i].size(), i);
  }
  std::vector<float> prefill_got = decoder.Step(prefill_tokens, prefill_slots);
  const double prefill_diff =
      MaxAbsDiff(at::tensor(prefill_got).view({-1, c.hidden_size}), prefill_want_td);
  EXPECT_LE(prefill_diff, 1e-5) << dir << ": prefill hidden states";
  EXPECT_EQ(fast.lengths, ref.lengths);
  // Sequence 1 stops after two steps: later steps run on slots {0, 2}.
  double worst_hidden = 0, worst_kv = 0;
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<int64_t> slots = s < 2 ? std::vector<int64_t>{0, 1, 2} : std::vector<int64_t>{0, 2};
    std::vector<int64_t> tokens, positions;
    for (int64_t slot : slots) {
      tokens.push_back((5 * s + 3 * slot + 1) % c.vocab_size);
      positions.push_back(ref.lengths[slot]);
    }
    ModelInput step;
    step.tokens_t = at::tensor(tokens, at::TensorOptions().dtype(at::kLong));
    step.positions_t = at::tensor(positions, at::TensorOptions().dtype(at::kLong));
    step.layout.seq_lens.assign(slots.size(), 1);
    ref.slot_of_segment = slots;
    step.cache = &ref;
    at::Tensor want_bd = model.Forward(step).hidden_td;
    std::vector<float> got = decoder.Step(tokens, slots);
    at::Tensor got_bd = at::tensor(got).view({static_cast<int64_t>(slots.size()), c.hidden_size});
    worst_hidden = std::max(worst_hidden, MaxAbsDiff(got_bd, want_bd));
    EXPECT_EQ(fast.lengths, ref.lengths);
  }
  for (size_t l = 0; l < ref.k_skmd.size(); ++l) {
    worst_kv = std::max(worst_kv, MaxAbsDiff(fast.k_skmd[l], ref.k_skmd[l]));
    worst_kv = std::max(worst_kv, MaxAbsDiff(fast.v_skmd[l], ref.v_skmd[l]));
  }
  EXPECT_LE(worst_hidden, 1e-5) << dir << ": max |hidden diff| over " << steps << " steps";
  EXPECT_LE(worst_kv, 1e-5) << dir << ": max |KV cache diff|";
  std::cout << dir << ": DecodeForward vs training forward, prefill max |hidden diff| " << prefill_diff
            << ", decode max |hidden diff| " << worst_hidden
            << ", max |KV diff| " << worst_kv << "\n";
  // Logits: the same LM head as the model's.
  std::vector<float> hidden = decoder.Step({1, 2}, {0, 2});
  std::vector<float> logits(2 * c.vocab_size);
  decoder.Logits(hidden.data(), 2, logits.data());
  at::Tensor want = model.Logits(at::tensor(hidden).view({2, c.hidden_size}));
  EXPECT_LE(MaxAbsDiff(at::tensor(logits).view({2, c.vocab_size}), want), 1e-5);
}

TEST(DecodeForward, MatchesTrainingForwardForMixedMoeLayers) {
  ExpectDecodeMatchesTrainingForward("trainer/model/testdata/moe");
}

TEST(DecodeForward, MatchesTrainingForwardForDenseTiedModel) {
  ExpectDecodeMatchesTrainingForward("trainer/model/testdata/dense");
}

TEST(DecodeForward, NotSupportedForBf16Models) {
  auto loaded = LoadHfModel("trainer/model/testdata/dense");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  (*loaded)->to(at::kBFloat16);
  EXPECT_FALSE(DecodeForward::Supported(**loaded));
}

}  // namespace
}  // namespace moerl
