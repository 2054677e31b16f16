// The order in which the feeder publishes prompts: a seeded shuffle per
// epoch, `drop_last` to whole batches, and the resumable position.
//
//   PromptOrder order(/*num_rows=*/7473, {.seed = 1, .shuffle = true,
//                                         .drop_last = true, .batch_size = 256});
//   order.prompts_per_epoch()          // 7424 = 29 * 256
//   order.RowAt({/*epoch=*/2, /*index=*/5})  // row published 6th in epoch 2
//
// Epoch e's permutation depends only on (seed, e, num_rows), so a feeder
// restarted at DataPosition{e, i} publishes exactly what the stopped one
// would have published next. The shuffle is our own (SplitMix64 +
// Fisher-Yates), identical on every platform and standard library.
//
// Thread-compatible: const methods may be called concurrently.
#ifndef MOERL_DATASET_PROMPT_ORDER_H_
#define MOERL_DATASET_PROMPT_ORDER_H_

#include <cstdint>
#include <vector>

namespace moerl {

// The next prompt to publish: `index` within `epoch`'s order, both 0-based.
struct DataPosition {
  uint32_t epoch = 0;
  uint64_t index = 0;
};

inline bool operator==(const DataPosition& a, const DataPosition& b) {
  return a.epoch == b.epoch && a.index == b.index;
}

struct OrderOptions {
  uint64_t seed = 1;
  bool shuffle = true;
  // Drop the last incomplete batch of each epoch (AReaL's train default).
  bool drop_last = true;
  uint64_t batch_size = 1;
};

class PromptOrder {
 public:
  PromptOrder(uint64_t num_rows, const OrderOptions& options);

  uint64_t prompts_per_epoch() const { return prompts_per_epoch_; }

  // Row (0-based, into the rows given to the feeder) at `position`;
  // position.index must be < prompts_per_epoch().
  uint64_t RowAt(const DataPosition& position) const;

  // The whole permutation of epoch `epoch` (num_rows entries; only the first
  // prompts_per_epoch() are published).
  std::vector<uint64_t> EpochOrder(uint32_t epoch) const;

  // The position after `position`: next index, or the next epoch's start.
  DataPosition Next(const DataPosition& position) const;

 private:
  uint64_t num_rows_;
  OrderOptions options_;
  uint64_t prompts_per_epoch_;
  // Cache of the permutation of one epoch (RowAt is called in order).
  mutable uint32_t cached_epoch_ = UINT32_MAX;
  mutable std::vector<uint64_t> cached_order_;
};

}  // namespace moerl

#endif  // MOERL_DATASET_PROMPT_ORDER_H_
