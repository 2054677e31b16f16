// Qwen2/Qwen3's pre-tokenizer split, as a hand-written scanner over Unicode
// categories instead of a backtracking regex. It is equivalent to
//
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
//   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// with "Isolated" behaviour (every match is a piece; the pattern matches every
// character, so there are no gaps). See specs/sglang-hf-reference.md §5.2.
// Like Oniguruma's case folding, the 's' of "'s" also matches U+017F (ſ).
//
//   std::vector<uint32_t> ends;
//   SplitPieces("I'm 42!", &ends);   // pieces "I" "'m" " " "4" "2" "!"
//
// Stateless and thread-safe; linear in the input.
#ifndef MOERL_COMMON_TOKENIZER_PRETOKENIZER_H_
#define MOERL_COMMON_TOKENIZER_PRETOKENIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moerl {
namespace tokenizer {

// Splits valid UTF-8 `text` and writes the byte offset where each piece ends
// (the last one is text.size(); empty text gives no pieces). `*piece_ends` is
// cleared first.
void SplitPieces(absl::string_view text, std::vector<uint32_t>* piece_ends);

// Convenience for tests: the pieces themselves.
std::vector<std::string> SplitPiecesToStrings(absl::string_view text);

}  // namespace tokenizer
}  // namespace moerl

#endif  // MOERL_COMMON_TOKENIZER_PRETOKENIZER_H_
