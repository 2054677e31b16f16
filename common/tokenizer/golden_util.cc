#include "common/tokenizer/golden_util.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/testing/shared_data.h"
#include "common/tokenizer/unicode_text.h"
#include "gtest/gtest.h"

namespace moerl {
namespace tokenizer_testing {

absl::StatusOr<std::vector<std::string>> ReadTestdataLines(const std::string& name) {
  auto text = ReadFileToString("common/tokenizer/testdata/" + name);
  if (!text.ok()) return text.status();
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    lines.emplace_back(line);
  }
  return lines;
}

uint64_t Fnv1a64(absl::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char b : bytes) {
    h ^= b;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t IdsFnv1a64(absl::Span<const int32_t> ids) {
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  for (int32_t id : ids) {
    const uint32_t u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) bytes.push_back(static_cast<char>((u >> (8 * k)) & 0xFF));
  }
  return Fnv1a64(bytes);
}

absl::StatusOr<Tokenizer> LoadQwenTokenizer() {
  const std::string relative = "data/qwen-tokenizer/vocab.json";
  const std::string vocab = SharedDataPath(relative);
  if (vocab.empty()) return absl::NotFoundError(MissingSharedDataMessage(relative));
  return Tokenizer::FromVocabMerges(vocab.substr(0, vocab.rfind('/')));
}

std::string IdsToString(absl::Span<const int32_t> ids) { return absl::StrCat("[", absl::StrJoin(ids, ", "), "]"); }

size_t FirstDifference(absl::Span<const int32_t> a, absl::Span<const int32_t> b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

void ExpectMatchesGoldenCases(const Tokenizer& tokenizer, const std::string& name, size_t min_cases,
                              bool nfc_round_trip) {
  auto lines = ReadTestdataLines(name);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_GT(lines->size(), min_cases) << name;
  int failures = 0;
  for (size_t i = 0; i < lines->size() && failures < 10; ++i) {
    const nlohmann::json c = nlohmann::json::parse((*lines)[i]);
    const std::string text = c["text"];
    const auto want = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tokenizer.Encode(text);
    if (got != want) {
      ++failures;
      ADD_FAILURE() << name << " case " << i << " " << nlohmann::json(text).dump()
                    << ": first difference at id index " << FirstDifference(got, want) << "\n got  "
                    << IdsToString(got) << "\n want " << IdsToString(want);
      continue;
    }
    auto decoded = tokenizer.Decode(got);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, c["decoded"].get<std::string>()) << name << " case " << i;
    if (nfc_round_trip && tokenizer::IsNfc(text)) {
      EXPECT_EQ(*decoded, text) << "round trip of " << name << " case " << i;
    }
  }
  EXPECT_EQ(failures, 0);
}

}  // namespace tokenizer_testing
}  // namespace moerl
