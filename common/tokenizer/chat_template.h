// Qwen3's chat template (the hybrid-thinking one in Qwen3's
// tokenizer_config.json) for the turns moerl uses: an optional system turn,
// one user turn, and the generation prompt. Byte-identical to
// transformers' apply_chat_template(..., tokenize=False) for those inputs.
//
//   ChatOptions options;
//   options.enable_thinking = false;
//   std::string prompt = RenderChatPrompt("What is 2+2?", options);
//   // "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
//   // "<think>\n\n</think>\n\n"
//
// Pure function; thread-safe. Encode the result with Tokenizer::Encode: the
// markers are added tokens and come out as single ids.
#ifndef MOERL_COMMON_TOKENIZER_CHAT_TEMPLATE_H_
#define MOERL_COMMON_TOKENIZER_CHAT_TEMPLATE_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace moerl {

struct ChatOptions {
  // Rendered as a system turn when set, even if empty (as the template does
  // for a system message with empty content). Qwen3 adds no default.
  std::optional<std::string> system;
  // false appends the pre-filled, closed think block "<think>\n\n</think>\n\n"
  // after the generation prompt (enable_thinking=False in transformers);
  // true renders as when enable_thinking is undefined or true.
  bool enable_thinking = true;
  // Ends with "<|im_start|>assistant\n" so the model writes the reply.
  bool add_generation_prompt = true;
};

std::string RenderChatPrompt(absl::string_view user, const ChatOptions& options = {});

}  // namespace moerl

#endif  // MOERL_COMMON_TOKENIZER_CHAT_TEMPLATE_H_
