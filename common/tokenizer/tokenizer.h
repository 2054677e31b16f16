// Hugging Face byte-level BPE tokenizer, id-for-id compatible with Qwen2/3.
//
// Loads `tokenizer.json` or the older `vocab.json` + `merges.txt` +
// `tokenizer_config.json`, and encodes exactly as Hugging Face `tokenizers`
// does for Qwen's pipeline (specs/sglang-hf-reference.md §5):
//   1. added tokens are cut out of the raw text (leftmost, then longest);
//   2. each remaining segment is NFC-normalised (ICU);
//   3. split by Qwen's pattern (pretokenizer.h, a scanner, not a regex);
//   4. each piece's bytes run through rank-ordered BPE (bpe.h, cached).
// Decoding maps ids back to bytes and replaces ill-formed UTF-8 with U+FFFD;
// for generation use StreamingDecoder (streaming_decoder.h).
//
//   MOERL_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::FromVocabMerges(dir));
//   std::vector<int32_t> ids = tok.Encode("Hello world");     // {9707, 1879}
//   MOERL_ASSIGN_OR_RETURN(std::string text, tok.Decode(ids));
//   std::vector<int32_t> prompt = tok.Encode(tok.RenderChatPrompt("What is 2+2?"));
//
// Input that is not valid UTF-8 is encoded as if each maximal ill-formed
// subpart were U+FFFD (HF cannot see such input: it takes Rust strings).
//
// Threading and ownership: a Tokenizer is a cheap handle to immutable shared
// state (plus an internally locked BPE cache); copies share it, and every
// const method may be called from any number of threads.
#ifndef MOERL_COMMON_TOKENIZER_TOKENIZER_H_
#define MOERL_COMMON_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tokenizer/chat_template.h"

namespace moerl {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;  // only affects Decode with skip_special_tokens
};

// Everything a loader extracts from the files; Tokenizer::FromParts
// validates it. Public so tests can build small tokenizers by hand.
struct TokenizerParts {
  absl::flat_hash_map<std::string, int32_t> vocab;            // byte-level string -> id
  std::vector<std::pair<std::string, std::string>> merges;    // rank = index
  std::vector<AddedToken> added_tokens;
  // Content of the EOS token. Empty: "<|im_end|>" if present, else
  // "<|endoftext|>" if present, else the tokenizer has no EOS (eos_id -1).
  std::string eos_token;
};

struct DecodeOptions {
  bool skip_special_tokens = false;
  // Drop ids that name no token (negative, past vocab_size(), or a gap such
  // as Qwen's padding rows) instead of failing, as Hugging Face tokenizers'
  // decode does. A model's output layer is wider than the vocabulary, so a
  // sampler can emit such ids; the rollout and evaluation paths decode them
  // the way AReaL's tokenizer would.
  bool skip_unknown_ids = false;
};

class Tokenizer {
 public:
  // A Hugging Face tokenizer.json with Qwen's pipeline (NFC, the Qwen split
  // pattern, ByteLevel without prefix space, BPE). Any other pipeline is
  // kUnimplemented with the JSON key path, rather than silently different ids.
  // If tokenizer_config.json sits beside it, its eos_token is used.
  static absl::StatusOr<Tokenizer> FromTokenizerJson(const std::string& path);

  // `dir` holds vocab.json, merges.txt ("#version" header optional) and
  // tokenizer_config.json (added_tokens_decoder, eos_token).
  static absl::StatusOr<Tokenizer> FromVocabMerges(const std::string& dir);

  static absl::StatusOr<Tokenizer> FromParts(TokenizerParts parts);

  std::vector<int32_t> Encode(absl::string_view text) const;

  // kInvalidArgument naming the position of an id that is negative, past
  // vocab_size(), or a gap in the id space (such as Qwen's padding rows),
  // unless options.skip_unknown_ids.
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                     const DecodeOptions& options = {}) const;

  // The raw bytes of one token (an added token's content, literally); the
  // same errors as Decode.
  absl::StatusOr<absl::string_view> TokenBytes(int32_t id) const;

  // The id of an added token's content or of a byte-level vocab string.
  std::optional<int32_t> TokenToId(absl::string_view token) const;

  // RenderChatPrompt (chat_template.h): Qwen3's template for one user turn.
  // The markers it writes are added tokens of every tokenizer moerl ships.
  std::string RenderChatPrompt(absl::string_view user, const ChatOptions& options = {}) const;

  bool IsSpecial(int32_t id) const;
  int32_t eos_id() const;
  // Ids that end generation: eos_id() and <|endoftext|> (Qwen: 151645,
  // 151643), without duplicates or missing ones.
  std::vector<int32_t> stop_ids() const;
  // One past the largest id (Qwen3: 151669; the model's embedding is larger).
  int32_t vocab_size() const;
  const std::vector<AddedToken>& added_tokens() const;

 private:
  struct Model;
  explicit Tokenizer(std::shared_ptr<const Model> model) : model_(std::move(model)) {}
  void EncodeSegment(absl::string_view segment, std::vector<int32_t>* ids) const;

  std::shared_ptr<const Model> model_;
};

}  // namespace moerl

#endif  // MOERL_COMMON_TOKENIZER_TOKENIZER_H_
