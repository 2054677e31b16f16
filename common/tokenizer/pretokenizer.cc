#include "common/tokenizer/pretokenizer.h"

#include "common/tokenizer/unicode_text.h"

namespace moerl {
namespace tokenizer {
namespace {

// Per-codepoint facts the scanner needs, decoded once per call.
struct Scan {
  std::vector<char32_t> cps;
  std::vector<CharClass> cls;
  std::vector<uint32_t> byte_start;  // size cps.size() + 1

  bool Is(size_t i, CharClass c) const { return i < cps.size() && cls[i] == c; }
  bool IsCrLf(size_t i) const { return i < cps.size() && (cps[i] == '\r' || cps[i] == '\n'); }
};

char32_t AsciiLower(char32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Length in codepoints of a contraction ("'s", "'re", ...) at p, or 0.
size_t ContractionLength(const Scan& s, size_t p) {
  const size_t n = s.cps.size();
  if (s.cps[p] != '\'' || p + 1 >= n) return 0;
  const char32_t c1 = AsciiLower(s.cps[p + 1]);
  // Oniguruma folds U+017F LATIN SMALL LETTER LONG S to 's' under (?i).
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd' || s.cps[p + 1] == 0x17F) return 2;
  if (p + 2 >= n) return 0;
  const char32_t c2 = AsciiLower(s.cps[p + 2]);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// The end (exclusive, in codepoints) of the piece that starts at p.
size_t PieceEnd(const Scan& s, size_t p) {
  const size_t n = s.cps.size();
  if (const size_t len = ContractionLength(s, p); len > 0) return p + len;

  // [^\r\n\p{L}\p{N}]?\p{L}+
  size_t letters_from = n;
  if (s.Is(p, CharClass::kLetter)) {
    letters_from = p;
  } else if (!s.Is(p, CharClass::kNumber) && !s.IsCrLf(p) && s.Is(p + 1, CharClass::kLetter)) {
    letters_from = p + 1;
  }
  if (letters_from < n) {
    size_t q = letters_from;
    while (s.Is(q, CharClass::kLetter)) ++q;
    return q;
  }

  // \p{N}
  if (s.Is(p, CharClass::kNumber)) return p + 1;

  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  size_t other_from = n;
  if (s.Is(p, CharClass::kOther)) {
    other_from = p;
  } else if (s.cps[p] == ' ' && s.Is(p + 1, CharClass::kOther)) {
    other_from = p + 1;
  }
  if (other_from < n) {
    size_t q = other_from;
    while (s.Is(q, CharClass::kOther)) ++q;
    while (s.IsCrLf(q)) ++q;
    return q;
  }

  // \s*[\r\n]+ | \s+(?!\S) | \s+
  if (s.Is(p, CharClass::kSpace)) {
    size_t q = p;
    size_t last_newline = n;
    for (; s.Is(q, CharClass::kSpace); ++q) {
      if (s.IsCrLf(q)) last_newline = q;
    }
    if (last_newline < n) return last_newline + 1;
    if (q - p > 1 && q < n) return q - 1;
    return q;
  }
  return p + 1;  // unreachable: every class is handled above
}

}  // namespace

void SplitPieces(absl::string_view text, std::vector<uint32_t>* piece_ends) {
  piece_ends->clear();
  Scan s;
  s.cps.reserve(text.size());
  s.cls.reserve(text.size());
  s.byte_start.reserve(text.size() + 1);
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char b = static_cast<unsigned char>(text[i]);
    char32_t cp;
    int len;
    if (b < 0x80) {
      cp = b;
      len = 1;
    } else {
      const Utf8Step step = DecodeUtf8Step(text.data() + i, text.size() - i);
      cp = step.codepoint;  // invalid input is not expected; U+FFFD keeps us safe
      len = step.length;
    }
    s.cps.push_back(cp);
    s.cls.push_back(ClassifyCodepoint(cp));
    s.byte_start.push_back(static_cast<uint32_t>(i));
    i += len;
  }
  s.byte_start.push_back(static_cast<uint32_t>(text.size()));
  size_t p = 0;
  while (p < s.cps.size()) {
    p = PieceEnd(s, p);
    piece_ends->push_back(s.byte_start[p]);
  }
}

std::vector<std::string> SplitPiecesToStrings(absl::string_view text) {
  std::vector<uint32_t> ends;
  SplitPieces(text, &ends);
  std::vector<std::string> pieces;
  uint32_t start = 0;
  for (uint32_t end : ends) {
    pieces.emplace_back(text.substr(start, end - start));
    start = end;
  }
  return pieces;
}

}  // namespace tokenizer
}  // namespace moerl
