// Finds added tokens (<|im_start|>, <think>, ...) in raw text before any
// normalisation, as Hugging Face does for tokens with normalized=false:
// the leftmost match wins, and among matches at the same position the
// longest.
//
//   AddedTokenMatcher matcher;
//   matcher.Add("<|im_end|>", 151645);
//   AddedTokenMatch m;
//   if (matcher.FindNext("hi<|im_end|>", 0, &m)) { /* m.start == 2 */ }
//
// Immutable after the Add calls; const methods are thread-safe.
#ifndef MOERL_COMMON_TOKENIZER_ADDED_TOKENS_H_
#define MOERL_COMMON_TOKENIZER_ADDED_TOKENS_H_

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace moerl {
namespace tokenizer {

struct AddedTokenMatch {
  size_t start = 0;
  size_t length = 0;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  // `content` must be non-empty. A repeated content keeps the first id.
  void Add(absl::string_view content, int32_t id);

  // The first match starting at or after `from`; false if none.
  bool FindNext(absl::string_view text, size_t from, AddedTokenMatch* match) const;

  bool empty() const { return count_ == 0; }

 private:
  // Tokens grouped by first byte, longest first within a group.
  std::array<std::vector<std::pair<std::string, int32_t>>, 256> by_first_byte_;
  size_t count_ = 0;
};

}  // namespace tokenizer
}  // namespace moerl

#endif  // MOERL_COMMON_TOKENIZER_ADDED_TOKENS_H_
