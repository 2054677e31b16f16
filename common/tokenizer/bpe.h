// Rank-ordered byte-level BPE over token ids, with a per-piece cache.
//
// A piece (raw bytes) starts as one symbol per byte (the id of that byte's
// single-character token); then the adjacent pair with the lowest merge rank
// is merged, leftmost first on ties, until no adjacent pair has a rank. This
// is Hugging Face's BPE with ignore_merges=false, no dropout, no unk.
//
//   MOERL_ASSIGN_OR_RETURN(BpeModel bpe, BpeModel::Create(vocab, merges));
//   std::vector<int32_t> ids;
//   bpe.EncodePiece(" hello", &ids);   // appends the piece's ids
//
// Thread-safe: the model is immutable after Create except for the cache,
// which is guarded by a reader/writer mutex. Movable, not copyable.
#ifndef MOERL_COMMON_TOKENIZER_BPE_H_
#define MOERL_COMMON_TOKENIZER_BPE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moerl {
namespace tokenizer {

class BpeCache;

class BpeModel {
 public:
  // `vocab`: byte-level token string -> id. `merges`: pairs of byte-level
  // strings, rank = index. Every single byte's token must be in `vocab`, as
  // must both sides of each merge and their concatenation. As in Hugging
  // Face, a repeated merge keeps the rank of its last occurrence.
  static absl::StatusOr<BpeModel> Create(
      const absl::flat_hash_map<std::string, int32_t>& vocab,
      const std::vector<std::pair<std::string, std::string>>& merges);

  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;
  ~BpeModel();

  // Appends the ids of `piece` (raw bytes), using the cache.
  void EncodePiece(absl::string_view piece, std::vector<int32_t>* ids) const;

  // The two uncached implementations, exposed so tests can compare them:
  // a heap over (rank, position) and the obviously-correct quadratic scan.
  void EncodePieceWithHeap(absl::string_view piece, std::vector<int32_t>* ids) const;
  void EncodePieceReference(absl::string_view piece, std::vector<int32_t>* ids) const;

  int32_t byte_id(uint8_t byte) const { return byte_ids_[byte]; }
  size_t merge_count() const { return merges_.size(); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  BpeModel();
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  const Merge* FindMerge(int32_t left, int32_t right) const {
    auto it = merges_.find(PairKey(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }

  std::array<int32_t, 256> byte_ids_{};
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::unique_ptr<BpeCache> cache_;
};

}  // namespace tokenizer
}  // namespace moerl

#endif  // MOERL_COMMON_TOKENIZER_BPE_H_
