// How a training batch is cut: into ppo_n_minibatches minibatches (one
// optimizer step each) balanced by tokens, then each minibatch into
// micro-batches of at most max_tokens_per_mb tokens (first-fit decreasing,
// AReaL's default "ffd"). Whole sequences only; a sequence longer than the
// cap gets a micro-batch of its own. Torch-free.
//
//   auto minis = SplitMinibatches(lengths, /*n=*/4);            // index lists
//   auto micros = PackMicroBatches(lengths, minis[0], 10240);   // index lists
//
// Deterministic (ties go to the lower index). Pure; thread-safe.
#ifndef MOERL_TRAINER_MICRO_BATCHES_H_
#define MOERL_TRAINER_MICRO_BATCHES_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace moerl {

using IndexList = std::vector<int64_t>;

// Splits sequences 0..n-1 into min(n_minibatches, n) non-empty lists with
// balanced token sums (greedy: longest first into the lightest list), each
// list sorted ascending.
std::vector<IndexList> SplitMinibatches(const std::vector<int64_t>& lengths, int64_t n_minibatches);

// Packs `indices` into bins of at most max_tokens tokens (FFD); nullopt: one
// bin. Each bin sorted ascending; bins ordered by their first index.
std::vector<IndexList> PackMicroBatches(const std::vector<int64_t>& lengths, const IndexList& indices,
                                        std::optional<int64_t> max_tokens);

}  // namespace moerl

#endif  // MOERL_TRAINER_MICRO_BATCHES_H_
