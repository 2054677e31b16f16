// GPT-2's byte-level alphabet: each of the 256 byte values is written as one
// printable codepoint, so that vocabulary and merge strings are plain text.
// Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF map to themselves; the other 68
// bytes map, in increasing byte order, to U+0100..U+0143 (' ' -> 'Ġ').
//
//   char32_t cp = ByteToCodepoint(' ');                 // U+0120
//   std::string raw;
//   bool ok = ByteLevelToBytes("Ġthe", &raw);           // raw == " the"
//
// Pure functions over constant tables; thread-safe.
#ifndef MOERL_COMMON_TOKENIZER_BYTE_LEVEL_H_
#define MOERL_COMMON_TOKENIZER_BYTE_LEVEL_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace moerl {
namespace tokenizer {

char32_t ByteToCodepoint(uint8_t byte);

// The byte that `cp` stands for, or -1 if `cp` is not in the alphabet.
int CodepointToByte(char32_t cp);

// The byte-level spelling (UTF-8) of raw `bytes`.
std::string BytesToByteLevel(absl::string_view bytes);

// Decodes a byte-level string (valid UTF-8) to the raw bytes it spells.
// Returns false, leaving `*bytes` unspecified, if some codepoint is outside
// the alphabet.
bool ByteLevelToBytes(absl::string_view byte_level, std::string* bytes);

}  // namespace tokenizer
}  // namespace moerl

#endif  // MOERL_COMMON_TOKENIZER_BYTE_LEVEL_H_
