#include "dataset/prompt_order.h"

#include <numeric>
#include <utility>

#include "common/logging.h"
#include "dataset/splitmix64.h"

namespace moerl {

PromptOrder::PromptOrder(uint64_t num_rows, const OrderOptions& options)
    : num_rows_(num_rows), options_(options) {
  MOERL_CHECK(options.batch_size > 0) << "batch_size must be positive";
  prompts_per_epoch_ =
      options.drop_last ? num_rows - num_rows % options.batch_size : num_rows;
}

std::vector<uint64_t> PromptOrder::EpochOrder(uint32_t epoch) const {
  std::vector<uint64_t> order(num_rows_);
  std::iota(order.begin(), order.end(), uint64_t{0});
  if (!options_.shuffle) return order;
  SplitMix64 rng(options_.seed * 0x100000001b3ULL ^ (uint64_t{epoch} + 1) * 0xcbf29ce484222325ULL);
  for (uint64_t i = num_rows_; i > 1; --i) {
    std::swap(order[i - 1], order[rng.Below(i)]);
  }
  return order;
}

uint64_t PromptOrder::RowAt(const DataPosition& position) const {
  MOERL_CHECK(position.index < prompts_per_epoch_)
      << "index " << position.index << " past the epoch's " << prompts_per_epoch_;
  if (cached_epoch_ != position.epoch) {
    cached_order_ = EpochOrder(position.epoch);
    cached_epoch_ = position.epoch;
  }
  return cached_order_[position.index];
}

DataPosition PromptOrder::Next(const DataPosition& position) const {
  if (position.index + 1 < prompts_per_epoch_) return {position.epoch, position.index + 1};
  return {position.epoch + 1, 0};
}

}  // namespace moerl
