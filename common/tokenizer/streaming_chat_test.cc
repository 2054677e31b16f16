// StreamingDecoder and RenderChatPrompt against Qwen3's tokenizer and the
// transformers renderings in testdata/qwen_chat.jsonl.
#include <nlohmann/json.hpp>

#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/golden_util.h"
#include "common/tokenizer/streaming_decoder.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/qwen_fixture.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using nlohmann::json;

class QwenStreamingChatTest : public tokenizer_testing::QwenTokenizerTest {};

std::string StreamAll(const Tokenizer& tok, const std::vector<int32_t>& ids, DecodeOptions options = {}) {
  StreamingDecoder stream(&tok, options);
  std::string out;
  for (int32_t id : ids) {
    auto piece = stream.Push(id);
    EXPECT_TRUE(piece.ok()) << piece.status();
    if (piece.ok()) out += *piece;
  }
  return out + stream.Finish();
}

TEST_F(QwenStreamingChatTest, StreamingHoldsBackASplitCharacterUntilComplete) {
  // "𓀀" is not one Qwen token: its 4 bytes arrive over three ids.
  const std::vector<int32_t> ids = shared_->Encode("𓀀");
  ASSERT_GT(ids.size(), 1u);
  StreamingDecoder stream(shared_);
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    auto piece = stream.Push(ids[i]);
    ASSERT_TRUE(piece.ok());
    EXPECT_EQ(*piece, "") << "emitted part of a character after id " << i;
  }
  EXPECT_GT(stream.pending_bytes(), 0u);
  auto last = stream.Push(ids.back());
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, "𓀀");
  EXPECT_EQ(stream.Finish(), "");
}

TEST_F(QwenStreamingChatTest, StreamingConcatenationEqualsDecodeOnEveryCase) {
  for (const char* name : {"qwen_cases.jsonl", "qwen_decode.jsonl"}) {
    auto lines = tokenizer_testing::ReadTestdataLines(name);
    ASSERT_TRUE(lines.ok()) << lines.status();
    for (size_t i = 0; i < lines->size(); ++i) {
      const auto ids = json::parse((*lines)[i])["ids"].get<std::vector<int32_t>>();
      for (bool skip : {false, true}) {
        DecodeOptions options{skip};
        auto whole = shared_->Decode(ids, options);
        ASSERT_TRUE(whole.ok()) << whole.status();
        ASSERT_EQ(StreamAll(*shared_, ids, options), *whole) << name << " case " << i << " skip " << skip;
      }
    }
  }
}

TEST_F(QwenStreamingChatTest, StreamingRejectsAnInvalidIdAndKeepsGoing) {
  StreamingDecoder stream(shared_);
  EXPECT_FALSE(stream.Push(151700).ok());
  auto piece = stream.Push(9707);
  ASSERT_TRUE(piece.ok());
  EXPECT_EQ(*piece, "Hello");
}

TEST_F(QwenStreamingChatTest, ChatPromptMatchesTransformersTemplateTextAndIds) {
  auto lines = tokenizer_testing::ReadTestdataLines("qwen_chat.jsonl");
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_EQ(lines->size(), 36u);
  for (const std::string& line : *lines) {
    const json c = json::parse(line);
    ChatOptions options;
    if (!c["system"].is_null()) options.system = c["system"].get<std::string>();
    options.enable_thinking = c["enable_thinking"].is_null() || c["enable_thinking"].get<bool>();
    options.add_generation_prompt = c["add_generation_prompt"];
    const std::string text = RenderChatPrompt(c["user"].get<std::string>(), options);
    EXPECT_EQ(text, c["text"].get<std::string>()) << line;
    EXPECT_EQ(shared_->RenderChatPrompt(c["user"].get<std::string>(), options), text);
    EXPECT_EQ(shared_->Encode(text), c["ids"].get<std::vector<int32_t>>()) << line;
  }
}

TEST(RenderChatPrompt, SingleTurnWithThinkingOffHasTheClosedThinkBlock) {
  ChatOptions options;
  options.enable_thinking = false;
  EXPECT_EQ(RenderChatPrompt("Q", options),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  options.system = "S";
  options.add_generation_prompt = false;
  EXPECT_EQ(RenderChatPrompt("Q", options), "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n");
}

}  // namespace
}  // namespace moerl
