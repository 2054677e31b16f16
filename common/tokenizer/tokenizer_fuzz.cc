// libFuzzer entry point: arbitrary bytes never crash Encode, Decode or the
// StreamingDecoder, and for NFC text without added-token markers
// Decode(Encode(x)) == x. The first byte picks the mode.
//   bazel run --config=fuzz //common/tokenizer:tokenizer_fuzz -- -max_total_time=60
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/tokenizer/streaming_decoder.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/unicode_text.h"

namespace {

const moerl::Tokenizer& SmallTokenizer() {
  // Loaded once per process: libFuzzer calls the entry point millions of times.
  static const moerl::Tokenizer* const tokenizer = [] {
    auto tok = moerl::Tokenizer::FromTokenizerJson("common/tokenizer/data/moerl-gsm8k-bpe.json");
    MOERL_CHECK(tok.ok()) << tok.status().ToString();
    return new moerl::Tokenizer(*std::move(tok));
  }();
  return *tokenizer;
}

void CheckEncode(const moerl::Tokenizer& tok, const std::string& text) {
  const std::vector<int32_t> ids = tok.Encode(text);
  auto decoded = tok.Decode(ids);
  MOERL_CHECK(decoded.ok()) << decoded.status().ToString();
  if (moerl::tokenizer::IsValidUtf8(text) && moerl::tokenizer::IsNfc(text) && text.find('<') == std::string::npos) {
    MOERL_CHECK(*decoded == text) << "round trip changed the text";
  }
}

void CheckDecode(const moerl::Tokenizer& tok, const uint8_t* data, size_t size) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 2 <= size; i += 2) {
    // Mostly valid ids, some past the end and negative.
    const int v = data[i] | (data[i + 1] << 8);
    ids.push_back(v % (tok.vocab_size() + 64) - 32);
  }
  auto whole = tok.Decode(ids);
  moerl::StreamingDecoder stream(&tok);
  std::string streamed;
  bool all_ok = true;
  for (int32_t id : ids) {
    auto piece = stream.Push(id);
    all_ok = all_ok && piece.ok();
    if (piece.ok()) streamed += *piece;
  }
  streamed += stream.Finish();
  MOERL_CHECK(whole.ok() == all_ok) << "Decode and StreamingDecoder disagree on validity";
  if (whole.ok()) MOERL_CHECK(*whole == streamed) << "streaming decode differs from Decode";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const moerl::Tokenizer& tok = SmallTokenizer();
  if (data[0] % 2 == 0) {
    CheckEncode(tok, std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  } else {
    CheckDecode(tok, data + 1, size - 1);
  }
  return 0;
}
