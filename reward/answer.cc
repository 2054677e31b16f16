#include "reward/answer.h"

#include <algorithm>
#include <optional>

#include "reward/answer_value.h"
#include "reward/arithmetic.h"

namespace moerl {
namespace {

std::optional<AnswerValue> ParseGold(absl::string_view gold, UnitRule rule) {
  const size_t hashes = gold.rfind("####");
  if (hashes != absl::string_view::npos) gold.remove_prefix(hashes + 4);
  return ParseAnswerValue(gold, rule);
}

}  // namespace

const char* ScoreReasonName(ScoreReason reason) {
  switch (reason) {
    case ScoreReason::kNoAnswer: return "no_answer";
    case ScoreReason::kMismatch: return "mismatch";
    case ScoreReason::kMatch: return "match";
    case ScoreReason::kInvalidGold: return "invalid_gold";
  }
  return "unknown";
}

Score ScoreCompletion(absl::string_view completion, absl::string_view gold, UnitRule rule) {
  Score score;
  const std::optional<AnswerValue> gold_value = ParseGold(gold, rule);
  if (!gold_value) {
    score.reason = ScoreReason::kInvalidGold;
    return score;
  }
  ExtractedAnswer extracted = ExtractAnswer(completion);
  if (rule == UnitRule::kMathVerify && extracted.source == AnswerSource::kBoxed &&
      std::any_of(extracted.texts.begin(), extracted.texts.end(), MathVerifyCannotParse)) {
    extracted = ExtractAnswerOutsideBoxes(completion);  // as math-verify falls through
  }
  score.source = extracted.source;
  if (extracted.texts.empty()) return score;  // kNoAnswer
  score.answer = extracted.texts.front();
  score.reason = ScoreReason::kMismatch;
  std::optional<AnswerValue> first;
  for (const std::string& text : extracted.texts) {
    std::optional<AnswerValue> value = extracted.source == AnswerSource::kLastExpression
                                           ? std::optional<AnswerValue>()
                                           : ParseAnswerValue(text, rule);
    if (extracted.source == AnswerSource::kLastExpression) {
      if (std::optional<double> result = EvaluateArithmetic(text)) value = AnswerValue{*result};
    }
    if (!value) return score;
    if (rule == UnitRule::kMathVerify && extracted.source == AnswerSource::kBoxed &&
        value->percent) {
      // math-verify: a boxed "2.5\%" or "-3\%" is only 0.025 / -0.03.
      const std::string written = NormalizeAnswerText(text, nullptr, rule);
      auto whole_number_char = [](char c) { return (c >= '0' && c <= '9') || c == ','; };
      value->percent_matches_value =
          !written.empty() && std::all_of(written.begin(), written.end(), whole_number_char);
    }
    if (!first) {
      first = value;
    } else if (!AnswerValuesMatch(*first, *value) && !AnswerValuesMatch(*value, *first)) {
      return score;  // several boxes that disagree: hedging is not an answer
    }
  }
  if (AnswerValuesMatch(*gold_value, *first)) {
    score.reward = 1.0f;
    score.reason = ScoreReason::kMatch;
  }
  return score;
}

}  // namespace moerl
