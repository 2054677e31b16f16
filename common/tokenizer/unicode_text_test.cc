#include "common/tokenizer/unicode_text.h"

#include <unicode/uchar.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/tokenizer/golden_util.h"
#include "gtest/gtest.h"

namespace moerl {
namespace tokenizer {
namespace {

std::string Utf8Of(const std::vector<char32_t>& cps) {
  std::string out;
  for (char32_t cp : cps) AppendUtf8(cp, &out);
  return out;
}

std::vector<char32_t> ParseHexCodepoints(absl::string_view field) {
  std::vector<char32_t> cps;
  for (absl::string_view hex : absl::StrSplit(field, ' ')) {
    uint32_t v = 0;
    EXPECT_TRUE(absl::SimpleHexAtoi(hex, &v)) << hex;
    cps.push_back(v);
  }
  return cps;
}

bool IsUnassignedInIcu(char32_t cp) { return u_charType(static_cast<UChar32>(cp)) == U_UNASSIGNED; }

TEST(Utf8, DecodesWellFormedSequencesOfEveryLength) {
  const std::string text = "a\u00e9\u4e2d\U0001F600";
  std::vector<char32_t> got;
  for (size_t i = 0; i < text.size();) {
    const Utf8Step step = DecodeUtf8Step(text.data() + i, text.size() - i);
    ASSERT_TRUE(step.valid);
    got.push_back(step.codepoint);
    i += step.length;
  }
  EXPECT_EQ(got, (std::vector<char32_t>{'a', 0xE9, 0x4E2D, 0x1F600}));
}

// Expected values are Python's bytes.decode("utf-8", "replace"), which
// replaces each maximal subpart with one U+FFFD, as Rust's from_utf8_lossy.
TEST(Utf8, ReplacesEachMaximalIllFormedSubpartWithOneReplacementChar) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(ToValidUtf8("a\xFF" "b"), "a" + r + "b");
  EXPECT_EQ(ToValidUtf8("\xE0\x80"), r + r);              // E0 needs A0..BF next
  EXPECT_EQ(ToValidUtf8("\xF0\x9F\x98"), r);              // truncated 4-byte emoji
  EXPECT_EQ(ToValidUtf8("\xED\xA0\x80"), r + r + r);      // surrogate
  EXPECT_EQ(ToValidUtf8("\xC0\xAF"), r + r);              // overlong
  EXPECT_EQ(ToValidUtf8("\xF4\x90\x80\x80"), r + r + r + r);  // > U+10FFFF
  EXPECT_EQ(ToValidUtf8("\xE4\xB8" "x"), r + "x");
  EXPECT_FALSE(IsValidUtf8("\xE4\xB8"));
  EXPECT_TRUE(IsValidUtf8("\xE4\xB8\xAD"));
}

TEST(Utf8, FlagsOnlyCompletablePrefixesAsTruncated) {
  EXPECT_TRUE(DecodeUtf8Step("\xF0\x9F\x98", 3).truncated);
  EXPECT_FALSE(DecodeUtf8Step("\xF0\x20", 2).truncated);
  EXPECT_FALSE(DecodeUtf8Step("\xFF", 1).truncated);
}

// Every codepoint's class under Qwen's regex, probed through Hugging Face's
// own pre-tokenizer, against ours: ICU, plus unicode_newer_ranges.inc for
// codepoints newer than the system ICU.
TEST(ClassifyCodepoint, MatchesHuggingFaceForEveryCodepoint) {
  auto lines = tokenizer_testing::ReadTestdataLines("unicode_classes.tsv");
  ASSERT_TRUE(lines.ok()) << lines.status();
  const char names[] = {'O', 'L', 'N', 'S'};
  size_t checked = 0, mismatches = 0;
  for (const std::string& line : *lines) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    ASSERT_EQ(f.size(), 3u) << line;
    uint32_t lo, hi;
    ASSERT_TRUE(absl::SimpleHexAtoi(f[0], &lo) && absl::SimpleHexAtoi(f[1], &hi)) << line;
    for (uint32_t cp = lo; cp <= hi; ++cp, ++checked) {
      const char got = names[static_cast<int>(ClassifyCodepoint(cp))];
      if (got == f[2][0]) continue;
      if (++mismatches <= 20) {
        ADD_FAILURE() << "U+" << std::hex << cp << ": ours " << got << ", Hugging Face " << f[2]
                      << (IsUnassignedInIcu(cp) ? " (unknown to ICU: regenerate unicode_newer_ranges.inc)" : "");
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(checked, 0x110000u - 0x800u - 2u);  // all but surrogates, CR, LF
}

TEST(Nfc, MatchesHuggingFaceOnEveryCodepointAndItsDecomposition) {
  auto lines = tokenizer_testing::ReadTestdataLines("nfc.tsv");
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_GT(lines->size(), 10000u);
  size_t mismatches = 0;
  for (const std::string& line : *lines) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    ASSERT_EQ(f.size(), 2u) << line;
    const std::string in = Utf8Of(ParseHexCodepoints(f[0]));
    const std::string want = Utf8Of(ParseHexCodepoints(f[1]));
    EXPECT_FALSE(IsNfc(in)) << f[0];
    if (NfcNormalize(in) != want && ++mismatches <= 20) ADD_FAILURE() << "NFC of " << f[0] << ": want " << f[1];
  }
  EXPECT_EQ(mismatches, 0u);
}

TEST(Nfc, LeavesAsciiAndComposedTextAlone) {
  EXPECT_EQ(NfcNormalize("plain ascii"), "plain ascii");
  EXPECT_EQ(NfcNormalize("caf\u00e9 \u4e2d"), "caf\u00e9 \u4e2d");
  EXPECT_EQ(NfcNormalize("cafe\u0301"), "caf\u00e9");
}

}  // namespace
}  // namespace tokenizer
}  // namespace moerl
