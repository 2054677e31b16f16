// Incremental detokenisation for generation: feed ids one at a time, get
// text as soon as it is complete UTF-8. A character whose bytes are split
// across tokens (common for CJK and emoji in byte-level BPE) is held back
// until its last byte arrives; bytes that can never form a character are
// emitted as U+FFFD at once. The concatenation of every Push result and
// Finish() equals Tokenizer::Decode of all the ids.
//
//   StreamingDecoder stream(&tokenizer);
//   for (int32_t id : generated) {
//     MOERL_ASSIGN_OR_RETURN(std::string piece, stream.Push(id));
//     std::cout << piece;
//   }
//   std::cout << stream.Finish();
//
// Not thread-safe (one per generation stream); `tokenizer` must outlive it.
#ifndef MOERL_COMMON_TOKENIZER_STREAMING_DECODER_H_
#define MOERL_COMMON_TOKENIZER_STREAMING_DECODER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"

namespace moerl {

class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer* tokenizer, DecodeOptions options = {})
      : tokenizer_(tokenizer), options_(options) {}

  // The text completed by `id` (possibly empty). An invalid id is
  // kInvalidArgument and leaves the decoder unchanged.
  absl::StatusOr<std::string> Push(int32_t id);

  // Whatever is still held back, with an unfinished character as U+FFFD;
  // resets the decoder for a new stream.
  std::string Finish();

  // Bytes held back waiting for the rest of a character (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  DecodeOptions options_;
  std::string pending_;
};

}  // namespace moerl

#endif  // MOERL_COMMON_TOKENIZER_STREAMING_DECODER_H_
