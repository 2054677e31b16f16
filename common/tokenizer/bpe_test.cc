#include "common/tokenizer/bpe.h"

#include <random>

#include "common/tokenizer/byte_level.h"
#include "gtest/gtest.h"

namespace moerl {
namespace tokenizer {
namespace {

struct Spec {
  absl::flat_hash_map<std::string, int32_t> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
};

Spec ByteVocab() {
  Spec s;
  for (int b = 0; b < 256; ++b) s.vocab[BytesToByteLevel(std::string(1, static_cast<char>(b)))] = b;
  return s;
}

void AddMerge(Spec* s, const std::string& l, const std::string& r) {
  s->merges.emplace_back(l, r);
  s->vocab.try_emplace(l + r, static_cast<int32_t>(s->vocab.size()));
}

TEST(BpeModel, LowestRankMergesFirstAndTiesGoLeft) {
  Spec s = ByteVocab();
  AddMerge(&s, "a", "a");   // rank 0
  AddMerge(&s, "b", "aa");  // rank 1
  auto bpe = BpeModel::Create(s.vocab, s.merges);
  ASSERT_TRUE(bpe.ok()) << bpe.status();
  const int32_t aa = s.vocab["aa"], baa = s.vocab["baa"];
  std::vector<int32_t> ids;
  bpe->EncodePiece("aaa", &ids);  // leftmost pair first: "aa" "a"
  EXPECT_EQ(ids, (std::vector<int32_t>{aa, 'a'}));
  ids.clear();
  bpe->EncodePiece("baa", &ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{baa}));
}

TEST(BpeModel, MergeOfUnknownTokenIsAnErrorNamingTheRank) {
  Spec s = ByteVocab();
  s.merges.emplace_back("a", "b");  // "ab" not in vocab
  auto bpe = BpeModel::Create(s.vocab, s.merges);
  ASSERT_FALSE(bpe.ok());
  EXPECT_NE(bpe.status().message().find("merge 0"), absl::string_view::npos) << bpe.status();
}

TEST(BpeModel, VocabWithoutAllBytesIsAnError) {
  Spec s = ByteVocab();
  s.vocab.erase(BytesToByteLevel(" "));
  EXPECT_FALSE(BpeModel::Create(s.vocab, s.merges).ok());
}

// The heap implementation against the quadratic reference, on random merge
// tables with many overlapping candidates and on random pieces.
TEST(BpeModel, HeapAgreesWithReferenceOnRandomTables) {
  std::mt19937 rng(42);
  for (int table = 0; table < 20; ++table) {
    Spec s = ByteVocab();
    std::vector<std::string> tokens = {"a", "b", "c", "\xc4\xa0"};  // \xc4\xa0 is 'Ġ' (space)
    for (int m = 0; m < 200; ++m) {
      const std::string& l = tokens[rng() % tokens.size()];
      const std::string& r = tokens[rng() % tokens.size()];
      if (s.vocab.contains(l + r)) continue;
      AddMerge(&s, l, r);
      tokens.push_back(l + r);
    }
    auto bpe = BpeModel::Create(s.vocab, s.merges);
    ASSERT_TRUE(bpe.ok()) << bpe.status();
    for (int trial = 0; trial < 300; ++trial) {
      std::string piece;
      const int n = 1 + rng() % 80;
      for (int i = 0; i < n; ++i) piece.push_back("abc "[rng() % 4]);
      std::vector<int32_t> heap, reference, cached;
      bpe->EncodePieceWithHeap(piece, &heap);
      bpe->EncodePieceReference(piece, &reference);
      bpe->EncodePiece(piece, &cached);
      bpe->EncodePiece(piece, &cached);  // second time from the cache
      ASSERT_EQ(heap, reference) << "table " << table << " piece \"" << piece << "\"";
      ASSERT_EQ(cached.size(), 2 * heap.size());
      ASSERT_TRUE(std::equal(heap.begin(), heap.end(), cached.begin()));
      ASSERT_TRUE(std::equal(heap.begin(), heap.end(), cached.begin() + heap.size()));
    }
  }
}

}  // namespace
}  // namespace tokenizer
}  // namespace moerl
