#include "common/tokenizer/chat_template.h"

#include "absl/strings/str_cat.h"

namespace moerl {

std::string RenderChatPrompt(absl::string_view user, const ChatOptions& options) {
  std::string out;
  if (options.system.has_value()) absl::StrAppend(&out, "<|im_start|>system\n", *options.system, "<|im_end|>\n");
  absl::StrAppend(&out, "<|im_start|>user\n", user, "<|im_end|>\n");
  if (options.add_generation_prompt) {
    absl::StrAppend(&out, "<|im_start|>assistant\n");
    if (!options.enable_thinking) absl::StrAppend(&out, "<think>\n\n</think>\n\n");
  }
  return out;
}

}  // namespace moerl
