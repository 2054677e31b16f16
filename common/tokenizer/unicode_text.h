// UTF-8 and Unicode-property helpers for the tokenizer: a lossy UTF-8 decoder
// (invalid bytes become U+FFFD, one per maximal subpart, the rule of Rust's
// String::from_utf8_lossy and Python's errors="replace"), the four character
// classes that Qwen's split pattern distinguishes (from ICU), and NFC (ICU).
//
//   std::string clean = ToValidUtf8(bytes);          // "a\xffb" -> "a\uFFFDb"
//   CharClass c = ClassifyCodepoint(U'字');          // CharClass::kLetter
//   std::string nfc = NfcNormalize("e\u0301");        // "\u00e9"
//
// Stateless and thread-safe (ICU's NFC instance is an immutable ICU-owned
// object).
#ifndef MOERL_COMMON_TOKENIZER_UNICODE_TEXT_H_
#define MOERL_COMMON_TOKENIZER_UNICODE_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace moerl {
namespace tokenizer {

// One step of UTF-8 decoding at the start of `data[0, size)`, size > 0.
struct Utf8Step {
  char32_t codepoint;  // U+FFFD when !valid
  int length;          // bytes consumed, 1..4
  bool valid;
  // Invalid only because the buffer ended: the bytes are a proper prefix of a
  // well-formed sequence (used by the streaming decoder to wait for more).
  bool truncated;
};
Utf8Step DecodeUtf8Step(const char* data, size_t size);

// Appends the UTF-8 encoding of `cp` (must be a Unicode scalar value).
void AppendUtf8(char32_t cp, std::string* out);

// True if `text` is well-formed UTF-8.
bool IsValidUtf8(absl::string_view text);

// `bytes` with every maximal ill-formed subpart replaced by U+FFFD.
std::string ToValidUtf8(absl::string_view bytes);

// The classes of Qwen's split pattern: \p{L}, \p{N}, \s (White_Space) and the
// rest. CR and LF are whitespace with their own flag.
enum class CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };
CharClass ClassifyCodepoint(char32_t cp);

// NFC of valid UTF-8 `text`; ASCII text is returned unchanged without a call
// into ICU.
std::string NfcNormalize(absl::string_view text);

// True if NFC would leave valid UTF-8 `text` unchanged (cheap for ASCII).
bool IsNfc(absl::string_view text);

}  // namespace tokenizer
}  // namespace moerl

#endif  // MOERL_COMMON_TOKENIZER_UNICODE_TEXT_H_
