#include "dataset/prompt.h"

#include "absl/strings/str_cat.h"

namespace moerl {

std::string Gsm8kUserContent(absl::string_view question) {
  return absl::StrCat(question, "\n", kGsm8kInstruction);
}

std::string RenderQwenChatPrompt(absl::string_view user_content, bool enable_thinking) {
  return absl::StrCat("<|im_start|>user\n", user_content, "<|im_end|>\n<|im_start|>assistant\n",
                      enable_thinking ? "" : "<think>\n\n</think>\n\n");
}

std::vector<int32_t> ByteTokenize(absl::string_view text) {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

}  // namespace moerl
