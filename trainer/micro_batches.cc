#include "trainer/micro_batches.h"

#include <algorithm>
#include <numeric>

namespace moerl {
namespace {

// Indices by descending length, ties by ascending index.
IndexList ByLengthDescending(const std::vector<int64_t>& lengths, IndexList indices) {
  std::stable_sort(indices.begin(), indices.end(),
                   [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  return indices;
}

void SortBins(std::vector<IndexList>* bins) {
  for (IndexList& bin : *bins) std::sort(bin.begin(), bin.end());
  std::sort(bins->begin(), bins->end(), [](const IndexList& a, const IndexList& b) { return a[0] < b[0]; });
}

}  // namespace

std::vector<IndexList> SplitMinibatches(const std::vector<int64_t>& lengths, int64_t n_minibatches) {
  const int64_t n = static_cast<int64_t>(lengths.size());
  const int64_t bins_n = std::max<int64_t>(1, std::min(n_minibatches, n));
  IndexList all(n);
  std::iota(all.begin(), all.end(), 0);
  std::vector<IndexList> bins(bins_n);
  std::vector<int64_t> load(bins_n, 0);
  for (int64_t i : ByLengthDescending(lengths, all)) {
    // The lightest bin; among equals, the one with fewer sequences, then the lowest.
    int64_t best = 0;
    for (int64_t b = 1; b < bins_n; ++b) {
      if (load[b] < load[best] || (load[b] == load[best] && bins[b].size() < bins[best].size())) best = b;
    }
    bins[best].push_back(i);
    load[best] += lengths[i];
  }
  bins.erase(std::remove_if(bins.begin(), bins.end(), [](const IndexList& b) { return b.empty(); }),
             bins.end());
  SortBins(&bins);
  return bins;
}

std::vector<IndexList> PackMicroBatches(const std::vector<int64_t>& lengths, const IndexList& indices,
                                        std::optional<int64_t> max_tokens) {
  if (indices.empty()) return {};
  if (!max_tokens) {
    std::vector<IndexList> one = {indices};
    SortBins(&one);
    return one;
  }
  std::vector<IndexList> bins;
  std::vector<int64_t> load;
  for (int64_t i : ByLengthDescending(lengths, indices)) {
    size_t b = 0;
    while (b < bins.size() && load[b] + lengths[i] > *max_tokens) ++b;
    if (b == bins.size()) {
      bins.emplace_back();
      load.push_back(0);
    }
    bins[b].push_back(i);
    load[b] += lengths[i];
  }
  SortBins(&bins);
  return bins;
}

}  // namespace moerl
