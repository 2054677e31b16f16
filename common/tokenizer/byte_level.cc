#include "common/tokenizer/byte_level.h"

#include <array>

#include "common/tokenizer/unicode_text.h"

namespace moerl {
namespace tokenizer {
namespace {

constexpr bool MapsToItself(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); }

struct Tables {
  std::array<char32_t, 256> byte_to_cp;
  std::array<int16_t, 0x144> cp_to_byte;  // every alphabet codepoint is < U+0144
};

constexpr Tables MakeTables() {
  Tables t{};
  for (auto& v : t.cp_to_byte) v = -1;
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    t.byte_to_cp[b] = MapsToItself(b) ? static_cast<char32_t>(b) : next++;
    t.cp_to_byte[t.byte_to_cp[b]] = static_cast<int16_t>(b);
  }
  return t;
}

constexpr Tables kTables = MakeTables();

}  // namespace

char32_t ByteToCodepoint(uint8_t byte) { return kTables.byte_to_cp[byte]; }

int CodepointToByte(char32_t cp) { return cp < kTables.cp_to_byte.size() ? kTables.cp_to_byte[cp] : -1; }

std::string BytesToByteLevel(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) AppendUtf8(ByteToCodepoint(b), &out);
  return out;
}

bool ByteLevelToBytes(absl::string_view byte_level, std::string* bytes) {
  bytes->clear();
  size_t i = 0;
  while (i < byte_level.size()) {
    const Utf8Step step = DecodeUtf8Step(byte_level.data() + i, byte_level.size() - i);
    if (!step.valid) return false;
    const int b = CodepointToByte(step.codepoint);
    if (b < 0) return false;
    bytes->push_back(static_cast<char>(b));
    i += step.length;
  }
  return true;
}

}  // namespace tokenizer
}  // namespace moerl
