// Fixtures shared by the parallel tests and the launch smoke binary: the tiny
// MoE, reproducible token sequences, and one rank's share of the next-token
// cross-entropy.
//
//   ModelConfig config = TinyMoeConfig();
//   auto seqs = LcgSequences(config.vocab_size, {7, 5, 9, 6});
//   ModelInput in = ModelInput::Pack(mine);
//   at::Tensor loss = CrossEntropyShare(model, in, model.Forward(in).hidden_td, NextTokenRows(seqs));
#ifndef MOERL_TRAINER_PARALLEL_TESTING_TINY_LM_H_
#define MOERL_TRAINER_PARALLEL_TESTING_TINY_LM_H_

#include <cstdint>
#include <vector>

#include "trainer/model/model.h"

namespace moerl {

// trainer/model/testdata/moe/config.json (a runfile) with router_z_loss_coef
// 1e-3, so that the z-loss is exercised too. Aborts when the file is missing.
ModelConfig TinyMoeConfig();

// One sequence per entry of `lengths`, ids in [0, vocab) from a 64-bit LCG
// seeded with 12345: the same sequences in every process and rank.
std::vector<std::vector<int64_t>> LcgSequences(int64_t vocab, const std::vector<int64_t>& lengths);

// Next-token predictions in `seqs`: sum of (length - 1).
int64_t NextTokenRows(const std::vector<std::vector<int64_t>>& seqs);

// The packed rows of `in` that predict a next token of their own sequence,
// and those tokens (int64 [N] each).
void NextTokenTargets(const ModelInput& in, at::Tensor* rows_n, at::Tensor* targets_n);

// Cross-entropy summed over `in`'s next-token rows of `hidden_td`, divided by
// `global_rows` (all ranks' rows): this rank's share of the global mean.
at::Tensor CrossEntropyShare(Qwen3Model& model, const ModelInput& in, const at::Tensor& hidden_td,
                             int64_t global_rows);

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_TESTING_TINY_LM_H_
