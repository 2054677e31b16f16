#include "dataset/prompt.h"

#include "gtest/gtest.h"

namespace moerl {
namespace {

TEST(Gsm8kUserContent, AppendsAReaLsInstructionAfterANewline) {
  EXPECT_EQ(Gsm8kUserContent("What is 2+3?"),
            "What is 2+3?\nPlease put your final answer within \\boxed{}.");
}

TEST(RenderQwenChatPrompt, OpensTheAssistantTurnWithAClosedThinkBlock) {
  EXPECT_EQ(RenderQwenChatPrompt("hi"),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_EQ(RenderQwenChatPrompt("hi", /*enable_thinking=*/true),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ByteTokenize, GivesOneIdPerByte) {
  EXPECT_EQ(ByteTokenize("a\xc3\xa9"), (std::vector<int32_t>{97, 0xc3, 0xa9}));
}

}  // namespace
}  // namespace moerl
