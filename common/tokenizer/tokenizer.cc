#include "common/tokenizer/tokenizer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/tokenizer/added_tokens.h"
#include "common/tokenizer/bpe.h"
#include "common/tokenizer/byte_level.h"
#include "common/tokenizer/pretokenizer.h"
#include "common/tokenizer/unicode_text.h"

namespace moerl {

using tokenizer::AddedTokenMatch;
using tokenizer::AddedTokenMatcher;
using tokenizer::BpeModel;

struct Tokenizer::Model {
  explicit Model(BpeModel bpe_model) : bpe(std::move(bpe_model)) {}

  enum class Kind : uint8_t { kNone, kRegular, kAdded };
  BpeModel bpe;
  AddedTokenMatcher matcher;
  std::vector<AddedToken> added_tokens;
  absl::flat_hash_map<std::string, int32_t> token_to_id;  // vocab + added contents
  std::vector<std::string> id_bytes;                      // what Decode emits per id
  std::vector<Kind> kind;
  std::vector<bool> special;
  int32_t eos_id = -1;
  std::vector<int32_t> stop_ids;
};

absl::StatusOr<Tokenizer> Tokenizer::FromParts(TokenizerParts parts) {
  MOERL_ASSIGN_OR_RETURN(BpeModel bpe, BpeModel::Create(parts.vocab, parts.merges));
  auto model = std::make_shared<Model>(std::move(bpe));
  int32_t max_id = -1;
  for (const auto& [token, id] : parts.vocab) {
    if (id < 0) return absl::InvalidArgumentError(absl::StrCat("vocab token \"", token, "\" has negative id ", id));
    max_id = std::max(max_id, id);
  }
  for (const AddedToken& t : parts.added_tokens) {
    if (t.id < 0) return absl::InvalidArgumentError(absl::StrCat("added token \"", t.content, "\" has negative id ", t.id));
    if (t.content.empty()) return absl::InvalidArgumentError(absl::StrCat("added token ", t.id, " has empty content"));
    if (!tokenizer::IsValidUtf8(t.content)) {
      return absl::InvalidArgumentError(absl::StrCat("added token ", t.id, " is not valid UTF-8"));
    }
    max_id = std::max(max_id, t.id);
  }
  // Ids index dense tables: a vocabulary with a far-out id would allocate
  // gigabytes for nothing (and INT32_MAX + 1 overflows).
  const int64_t id_limit =
      static_cast<int64_t>(parts.vocab.size() + parts.added_tokens.size()) + (int64_t{1} << 20);
  if (max_id >= id_limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token id ", max_id, " is far beyond the vocabulary's ", parts.vocab.size(),
        " tokens (ids must be dense, below ", id_limit, ")"));
  }
  const size_t size = static_cast<size_t>(max_id) + 1;
  model->id_bytes.resize(size);
  model->kind.assign(size, Model::Kind::kNone);
  model->special.assign(size, false);
  // Hugging Face's ByteLevel decoder: a token whose characters are all in the
  // byte alphabet decodes to those bytes, any other to its own UTF-8.
  auto token_bytes = [](const std::string& token) {
    std::string bytes;
    return tokenizer::ByteLevelToBytes(token, &bytes) ? bytes : token;
  };
  for (const auto& [token, id] : parts.vocab) {
    if (model->kind[id] != Model::Kind::kNone) {
      return absl::InvalidArgumentError(absl::StrCat("vocab id ", id, " is used twice (\"", token, "\")"));
    }
    model->kind[id] = Model::Kind::kRegular;
    model->id_bytes[id] = token_bytes(token);
  }
  model->token_to_id = std::move(parts.vocab);
  for (const AddedToken& t : parts.added_tokens) {
    model->kind[t.id] = Model::Kind::kAdded;
    model->special[t.id] = t.special;
    model->id_bytes[t.id] = token_bytes(t.content);
    model->token_to_id[t.content] = t.id;
    model->matcher.Add(t.content, t.id);
  }
  model->added_tokens = std::move(parts.added_tokens);

  auto find_added = [&](absl::string_view content) -> int32_t {
    for (const AddedToken& t : model->added_tokens) {
      if (t.content == content) return t.id;
    }
    return -1;
  };
  if (!parts.eos_token.empty()) {
    auto it = model->token_to_id.find(parts.eos_token);
    if (it == model->token_to_id.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("eos_token \"", parts.eos_token, "\" is neither an added token nor in the vocab"));
    }
    model->eos_id = it->second;
  } else {
    model->eos_id = find_added("<|im_end|>");
    if (model->eos_id < 0) model->eos_id = find_added("<|endoftext|>");
  }
  for (int32_t id : {model->eos_id, find_added("<|endoftext|>")}) {
    if (id >= 0 && std::find(model->stop_ids.begin(), model->stop_ids.end(), id) == model->stop_ids.end()) {
      model->stop_ids.push_back(id);
    }
  }
  return Tokenizer(std::move(model));
}

void Tokenizer::EncodeSegment(absl::string_view segment, std::vector<int32_t>* ids) const {
  if (segment.empty()) return;
  std::string normalized;
  if (!tokenizer::IsNfc(segment)) {
    normalized = tokenizer::NfcNormalize(segment);
    segment = normalized;
  }
  std::vector<uint32_t> ends;
  tokenizer::SplitPieces(segment, &ends);
  uint32_t start = 0;
  for (uint32_t end : ends) {
    model_->bpe.EncodePiece(segment.substr(start, end - start), ids);
    start = end;
  }
}

std::vector<int32_t> Tokenizer::Encode(absl::string_view text) const {
  std::string valid;
  if (!tokenizer::IsValidUtf8(text)) {
    valid = tokenizer::ToValidUtf8(text);
    text = valid;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  size_t pos = 0;
  AddedTokenMatch match;
  while (pos < text.size()) {
    if (!model_->matcher.FindNext(text, pos, &match)) {
      EncodeSegment(text.substr(pos), &ids);
      break;
    }
    EncodeSegment(text.substr(pos, match.start - pos), &ids);
    ids.push_back(match.id);
    pos = match.start + match.length;
  }
  return ids;
}

absl::StatusOr<absl::string_view> Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is outside [0, ", vocab_size(), ")"));
  }
  if (model_->kind[id] == Model::Kind::kNone) {
    return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is not assigned to any token"));
  }
  return absl::string_view(model_->id_bytes[id]);
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids, const DecodeOptions& options) const {
  std::string bytes;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto token = TokenBytes(ids[i]);
    if (!token.ok() && options.skip_unknown_ids) continue;
    if (!token.ok()) return Annotate(token.status(), absl::StrCat("decoding ids[", i, "]"));
    if (options.skip_special_tokens && model_->special[ids[i]]) continue;
    bytes.append(token->data(), token->size());
  }
  if (tokenizer::IsValidUtf8(bytes)) return bytes;
  return tokenizer::ToValidUtf8(bytes);
}

std::optional<int32_t> Tokenizer::TokenToId(absl::string_view token) const {
  auto it = model_->token_to_id.find(token);
  if (it == model_->token_to_id.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::RenderChatPrompt(absl::string_view user, const ChatOptions& options) const {
  return ::moerl::RenderChatPrompt(user, options);
}

bool Tokenizer::IsSpecial(int32_t id) const { return id >= 0 && id < vocab_size() && model_->special[id]; }
int32_t Tokenizer::eos_id() const { return model_->eos_id; }
std::vector<int32_t> Tokenizer::stop_ids() const { return model_->stop_ids; }
int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(model_->kind.size()); }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return model_->added_tokens; }

}  // namespace moerl
