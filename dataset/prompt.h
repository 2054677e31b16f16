// The GSM8K RL prompt (AReaL's areal/dataset/gsm8k.py) and the small
// interfaces the feeder uses to render and tokenize it.
//
//   std::string user = Gsm8kUserContent("Tom has 3 apples ...");
//   // "Tom has 3 apples ...\nPlease put your final answer within \\boxed{}."
//   std::string prompt = RenderQwenChatPrompt(user);   // chat template applied
//
// The feeder takes a RenderPromptFn and a TokenizeFn so that it does not
// depend on a tokenizer implementation. With common/tokenizer:
//   RenderPromptFn render = [&](absl::string_view u) { return tok.RenderChatPrompt(u, opts); };
//   TokenizeFn tokenize = [&](absl::string_view t) { return tok.Encode(t); };
// The dataset_feeder binary does exactly that (dataset/feeder_run.h).
// RenderQwenChatPrompt (Qwen3's template with enable_thinking=false, no
// system turn) and ByteTokenize (one id per UTF-8 byte) are tokenizer-free
// stand-ins for unit tests.
//
// Thread-safe; no state.
#ifndef MOERL_DATASET_PROMPT_H_
#define MOERL_DATASET_PROMPT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moerl {

// Appended to every question after a newline.
inline constexpr absl::string_view kGsm8kInstruction =
    "Please put your final answer within \\boxed{}.";

using TokenizeFn = std::function<std::vector<int32_t>(absl::string_view text)>;
using RenderPromptFn = std::function<std::string(absl::string_view user_content)>;

// question + "\n" + kGsm8kInstruction: the user turn's content, which is
// also what the max_length filter counts (without the chat template).
std::string Gsm8kUserContent(absl::string_view question);

// "<|im_start|>user\n{U}<|im_end|>\n<|im_start|>assistant\n" and, with
// enable_thinking false, the closed think block "<think>\n\n</think>\n\n".
std::string RenderQwenChatPrompt(absl::string_view user_content, bool enable_thinking = false);

// Interim tokenizer: each UTF-8 byte is one token id (0..255).
std::vector<int32_t> ByteTokenize(absl::string_view text);

}  // namespace moerl

#endif  // MOERL_DATASET_PROMPT_H_
