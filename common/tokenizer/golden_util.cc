#include "common/tokenizer/golden_util.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/testing/shared_data.h"

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

}  // namespace tokenizer_testing
}  // namespace moerl
