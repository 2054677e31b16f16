#include "dataset/prompt_order.h"

#include <numeric>
#include <utility>

#include "common/logging.h"

namespace moerl {
namespace {

// SplitMix64: a tiny, well-mixed generator with a fixed definition.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound) by rejection (no modulo bias).
  uint64_t Below(uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return x % bound;
  }

 private:
  uint64_t state_;
};

}  // namespace

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
