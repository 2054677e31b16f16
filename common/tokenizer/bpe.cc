#include "common/tokenizer/bpe.h"

#include <queue>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/tokenizer/byte_level.h"

namespace moerl {
namespace tokenizer {

// Piece bytes -> ids. Bounded: once full, new pieces are computed but not
// stored (as in Hugging Face), so memory stays flat on adversarial input.
class BpeCache {
 public:
  static constexpr size_t kMaxEntries = 1 << 17;
  static constexpr size_t kMaxPieceBytes = 256;

  bool Lookup(absl::string_view piece, std::vector<int32_t>* ids) {
    absl::ReaderMutexLock lock(&mu_);
    auto it = map_.find(piece);
    if (it == map_.end()) return false;
    ids->insert(ids->end(), it->second.begin(), it->second.end());
    return true;
  }
  void Insert(absl::string_view piece, const int32_t* ids, size_t n) {
    if (piece.size() > kMaxPieceBytes) return;
    absl::MutexLock lock(&mu_);
    if (map_.size() >= kMaxEntries) return;
    map_.try_emplace(piece, ids, ids + n);
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<int32_t>> map_;
};

BpeModel::BpeModel() : cache_(std::make_unique<BpeCache>()) {}
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;
BpeModel::~BpeModel() = default;

absl::StatusOr<BpeModel> BpeModel::Create(
    const absl::flat_hash_map<std::string, int32_t>& vocab,
    const std::vector<std::pair<std::string, std::string>>& merges) {
  BpeModel model;
  for (int b = 0; b < 256; ++b) {
    const std::string token = BytesToByteLevel(std::string(1, static_cast<char>(b)));
    auto it = vocab.find(token);
    if (it == vocab.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "vocab has no token for byte 0x", absl::Hex(b), " (\"", token,
          "\"); a byte-level BPE vocabulary must contain all 256 single-byte tokens"));
    }
    model.byte_ids_[b] = it->second;
  }
  model.merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    joined.assign(left).append(right);
    auto l = vocab.find(left);
    auto r = vocab.find(right);
    auto m = vocab.find(joined);
    if (l == vocab.end() || r == vocab.end() || m == vocab.end()) {
      const std::string& missing =
          l == vocab.end() ? left : (r == vocab.end() ? right : absl::StrCat(left, right));
      return absl::InvalidArgumentError(absl::StrCat("merge ", rank, " (\"", left, " ", right,
                                                     "\"): token \"", missing, "\" is not in the vocab"));
    }
    model.merges_[PairKey(l->second, r->second)] = Merge{static_cast<int32_t>(rank), m->second};
  }
  return model;
}

void BpeModel::EncodePiece(absl::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.size() == 1) {
    ids->push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  if (cache_->Lookup(piece, ids)) return;
  const size_t before = ids->size();
  EncodePieceWithHeap(piece, ids);
  cache_->Insert(piece, ids->data() + before, ids->size() - before);
}

void BpeModel::EncodePieceReference(absl::string_view piece, std::vector<int32_t>* ids) const {
  std::vector<int32_t> symbols;
  for (unsigned char b : piece) symbols.push_back(byte_ids_[b]);
  while (symbols.size() > 1) {
    size_t best = symbols.size();
    const Merge* best_merge = nullptr;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const Merge* m = FindMerge(symbols[i], symbols[i + 1]);
      if (m != nullptr && (best_merge == nullptr || m->rank < best_merge->rank)) {
        best = i;
        best_merge = m;
      }
    }
    if (best_merge == nullptr) break;
    symbols[best] = best_merge->merged_id;
    symbols.erase(symbols.begin() + best + 1);
  }
  ids->insert(ids->end(), symbols.begin(), symbols.end());
}

void BpeModel::EncodePieceWithHeap(absl::string_view piece, std::vector<int32_t>* ids) const {
  const int n = static_cast<int>(piece.size());
  if (n == 0) return;
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  // A candidate merge of the symbol at `pos` with its successor; stale
  // entries are detected by re-checking both ids when popped.
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t left_id;
    int32_t right_id;
    int32_t merged_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Symbol> symbols(n);
  for (int i = 0; i < n; ++i) {
    symbols[i] = {byte_ids_[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }
  std::vector<Candidate> storage;
  storage.reserve(n);
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap(
      std::greater<Candidate>(), std::move(storage));
  auto push_pair = [&](int32_t pos) {
    if (pos < 0) return;
    const int32_t next = symbols[pos].next;
    if (next < 0) return;
    if (const Merge* m = FindMerge(symbols[pos].id, symbols[next].id)) {
      heap.push({m->rank, pos, symbols[pos].id, symbols[next].id, m->merged_id});
    }
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[c.pos];
    if (left.id != c.left_id || left.next < 0) continue;  // merged away or changed
    const int32_t right_pos = left.next;
    Symbol& right = symbols[right_pos];
    if (right.id != c.right_id) continue;
    left.id = c.merged_id;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.pos;
    right.id = -1;  // dead; never the left side of a valid candidate again
    push_pair(left.prev);
    push_pair(c.pos);
  }
  for (int i = 0; i >= 0; i = symbols[i].next) ids->push_back(symbols[i].id);
}

}  // namespace tokenizer
}  // namespace moerl
