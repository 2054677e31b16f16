// libFuzzer target: answer extraction and scoring must not crash or read out
// of bounds on any text, and must be consistent: a match has reward 1, an
// extracted answer scored against itself as gold matches when it parses.
//   bazel run --config=fuzz //reward:answer_fuzz -- -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "reward/answer.h"
#include "reward/answer_value.h"
#include "reward/arithmetic.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const moerl::Score score = moerl::ScoreCompletion(text, "18");
  if ((score.reward == 1.0f) != (score.reason == moerl::ScoreReason::kMatch)) std::abort();
  if (score.reason == moerl::ScoreReason::kNoAnswer && !score.answer.empty()) std::abort();
  const moerl::ExtractedAnswer extracted = moerl::ExtractAnswer(text);
  if (extracted.source == moerl::AnswerSource::kLastExpression &&
      !moerl::EvaluateArithmetic(extracted.texts.at(0)).has_value()) {
    std::abort();  // only an expression that evaluates is returned as one
  }
  if (extracted.texts.size() == 1 && extracted.source != moerl::AnswerSource::kBoxed &&
      extracted.source != moerl::AnswerSource::kLastExpression) {
    const std::string& answer = extracted.texts[0];
    // A non-boxed answer without LaTeX or '/' is a plain number token: it must
    // parse, unless it is too long for a double (> 300 digits).
    if (!moerl::ParseAnswerValue(answer).has_value() && answer.size() <= 300 &&
        answer.find('\\') == std::string::npos && answer.find('/') == std::string::npos) {
      std::abort();
    }
  }
  // Gold may be anything too.
  moerl::ScoreCompletion("\\boxed{18}", text);
  return 0;
}
