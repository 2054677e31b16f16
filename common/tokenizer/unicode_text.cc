#include "common/tokenizer/unicode_text.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>

#include <algorithm>
#include <iterator>

#include "common/logging.h"

namespace moerl {
namespace tokenizer {
namespace {

bool InRange(unsigned char b, unsigned char lo, unsigned char hi) { return b >= lo && b <= hi; }

bool AllAscii(absl::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80) return false;
  }
  return true;
}

// Hugging Face's regex engine (Oniguruma) may know a newer Unicode than the
// system ICU. For codepoints ICU reports as unassigned, this table (generated
// from HF by unicode_newer_gen.cc) gives HF's class; it is empty of anything
// ICU already knows, so ICU stays the source for every assigned codepoint.
struct NewerRange {
  char32_t first;
  char32_t last;
  CharClass cls;
};
constexpr NewerRange kNewerRanges[] = {
#include "common/tokenizer/unicode_newer_ranges.inc"
};

CharClass ClassOfUnassigned(char32_t cp) {
  const NewerRange* end = std::end(kNewerRanges);
  const NewerRange* it = std::upper_bound(std::begin(kNewerRanges), end, cp,
                                          [](char32_t c, const NewerRange& r) { return c < r.first; });
  if (it == std::begin(kNewerRanges)) return CharClass::kOther;
  --it;
  return cp <= it->last ? it->cls : CharClass::kOther;
}

const icu::Normalizer2& Nfc() {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  MOERL_CHECK(U_SUCCESS(status) && nfc != nullptr) << "ICU NFC data missing: " << u_errorName(status);
  return *nfc;
}

}  // namespace

Utf8Step DecodeUtf8Step(const char* data, size_t size) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  const unsigned char b0 = p[0];
  if (b0 < 0x80) return {b0, 1, true, false};
  // Table 3-7 of the Unicode standard: the lead byte fixes the length and the
  // allowed range of the second byte; later bytes are always 80..BF.
  int need;
  unsigned char lo = 0x80, hi = 0xBF;
  char32_t cp;
  if (InRange(b0, 0xC2, 0xDF)) {
    need = 2;
    cp = b0 & 0x1F;
  } else if (InRange(b0, 0xE0, 0xEF)) {
    need = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (InRange(b0, 0xF0, 0xF4)) {
    need = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {0xFFFD, 1, false, false};
  }
  for (int i = 1; i < need; ++i) {
    if (static_cast<size_t>(i) >= size) return {0xFFFD, i, false, true};
    const unsigned char b = p[i];
    if (!InRange(b, i == 1 ? lo : 0x80, i == 1 ? hi : 0xBF)) return {0xFFFD, i, false, false};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, need, true, false};
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const Utf8Step step = DecodeUtf8Step(text.data() + i, text.size() - i);
    if (!step.valid) return false;
    i += step.length;
  }
  return true;
}

std::string ToValidUtf8(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const Utf8Step step = DecodeUtf8Step(bytes.data() + i, bytes.size() - i);
    if (step.valid) {
      out.append(bytes.data() + i, step.length);
    } else {
      AppendUtf8(0xFFFD, &out);
    }
    i += step.length;
  }
  return out;
}

CharClass ClassifyCodepoint(char32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::kSpace;
    return CharClass::kOther;
  }
  if (u_isUWhiteSpace(static_cast<UChar32>(cp))) return CharClass::kSpace;
  const int8_t type = u_charType(static_cast<UChar32>(cp));
  if (type == U_UNASSIGNED) return ClassOfUnassigned(cp);
  const uint32_t mask = U_MASK(type);
  if (mask & U_GC_L_MASK) return CharClass::kLetter;
  if (mask & U_GC_N_MASK) return CharClass::kNumber;
  return CharClass::kOther;
}

std::string NfcNormalize(absl::string_view text) {
  if (AllAscii(text)) return std::string(text);
  const icu::Normalizer2& nfc = Nfc();
  UErrorCode status = U_ZERO_ERROR;
  const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
  if (nfc.isNormalizedUTF8(piece, status) && U_SUCCESS(status)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 8);
  icu::StringByteSink<std::string> sink(&out);
  status = U_ZERO_ERROR;
  nfc.normalizeUTF8(0, piece, sink, nullptr, status);
  MOERL_CHECK(U_SUCCESS(status)) << "ICU NFC failed on valid UTF-8: " << u_errorName(status);
  return out;
}

bool IsNfc(absl::string_view text) {
  if (AllAscii(text)) return true;
  UErrorCode status = U_ZERO_ERROR;
  const bool normalized =
      Nfc().isNormalizedUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())), status);
  return U_SUCCESS(status) && normalized;
}

}  // namespace tokenizer
}  // namespace moerl
