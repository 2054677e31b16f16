// Test helpers for the golden fixtures written by
// tools/tokenizer/make_golden_fixtures.py: reading testdata files, the
// FNV-1a64 hashes the fixtures use, and loading Qwen3's tokenizer from
// third_party/data (a test that needs it fails with MissingSharedDataMessage when
// it is absent).
//
//   std::vector<std::string> lines = ReadTestdataLines("qwen_cases.jsonl");
//   MOERL_ASSIGN_OR_RETURN(Tokenizer tok, LoadQwenTokenizer());
//
// Test-only; thread-compatible.
#ifndef MOERL_COMMON_TOKENIZER_GOLDEN_UTIL_H_
#define MOERL_COMMON_TOKENIZER_GOLDEN_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tokenizer/tokenizer.h"

namespace moerl {
namespace tokenizer_testing {

// Non-empty, non-comment ("#...") lines of common/tokenizer/testdata/<name>.
absl::StatusOr<std::vector<std::string>> ReadTestdataLines(const std::string& name);

uint64_t Fnv1a64(absl::string_view bytes);
uint64_t IdsFnv1a64(absl::Span<const int32_t> ids);

// Qwen3's tokenizer from third_party/data/qwen-tokenizer (vocab + merges).
// kNotFound carries MissingSharedDataMessage when the files are absent.
absl::StatusOr<Tokenizer> LoadQwenTokenizer();

// "[1, 2, 3]" for failure messages, and the index of the first difference.
std::string IdsToString(absl::Span<const int32_t> ids);
size_t FirstDifference(absl::Span<const int32_t> a, absl::Span<const int32_t> b);

// gtest expectations over testdata/<name>, JSON lines {"text", "ids",
// "decoded"} from Hugging Face: more than `min_cases` cases, Encode(text) ==
// ids (the first 10 mismatches are reported with the first differing index),
// Decode(ids) == decoded, and with `nfc_round_trip` an NFC text decodes back
// to itself.
void ExpectMatchesGoldenCases(const Tokenizer& tokenizer, const std::string& name, size_t min_cases,
                              bool nfc_round_trip);

}  // namespace tokenizer_testing
}  // namespace moerl

#endif  // MOERL_COMMON_TOKENIZER_GOLDEN_UTIL_H_
