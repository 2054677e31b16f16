#include "common/tokenizer/streaming_decoder.h"

#include "common/tokenizer/unicode_text.h"

namespace moerl {

absl::StatusOr<std::string> StreamingDecoder::Push(int32_t id) {
  auto bytes = tokenizer_->TokenBytes(id);
  if (!bytes.ok()) return bytes.status();
  if (options_.skip_special_tokens && tokenizer_->IsSpecial(id)) return std::string();
  pending_.append(bytes->data(), bytes->size());
  // Emit everything up to a trailing, still-completable partial character.
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const tokenizer::Utf8Step step = tokenizer::DecodeUtf8Step(pending_.data() + i, pending_.size() - i);
    if (step.truncated) break;
    if (step.valid) {
      out.append(pending_, i, step.length);
    } else {
      tokenizer::AppendUtf8(0xFFFD, &out);
    }
    i += step.length;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamingDecoder::Finish() {
  std::string out = tokenizer::ToValidUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace moerl
