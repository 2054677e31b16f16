#include "reward/answer.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace moerl {
namespace {

bool IsDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

std::optional<double> ToNumber(absl::string_view text) {
  std::optional<std::string> number = ExtractLastNumber(text);
  if (!number) return std::nullopt;
  return std::strtod(number->c_str(), nullptr);
}

}  // namespace

const char* ScoreReasonName(ScoreReason reason) {
  switch (reason) {
    case ScoreReason::kNoAnswer: return "no_answer";
    case ScoreReason::kMismatch: return "mismatch";
    case ScoreReason::kMatch: return "match";
  }
  return "unknown";
}

std::optional<std::string> ExtractLastNumber(absl::string_view text) {
  // Scan backwards for the last digit, then extend over digits, commas
  // between digits, one decimal point and a leading minus sign.
  size_t end = text.size();
  while (end > 0 && !IsDigit(text[end - 1])) --end;
  if (end == 0) return std::nullopt;
  size_t begin = end;
  bool seen_point = false;
  while (begin > 0) {
    const char c = text[begin - 1];
    if (IsDigit(c)) {
      --begin;
    } else if ((c == ',' || (c == '.' && !seen_point)) && begin >= 2 && IsDigit(text[begin - 2])) {
      seen_point = seen_point || c == '.';
      --begin;
    } else {
      break;
    }
  }
  std::string number;
  if (begin > 0 && text[begin - 1] == '-') number.push_back('-');
  for (size_t i = begin; i < end; ++i) {
    if (text[i] != ',') number.push_back(text[i]);
  }
  return number;
}

Score ScoreCompletion(absl::string_view completion, absl::string_view gold) {
  std::optional<double> answer = ToNumber(completion);
  if (!answer) return {0.0f, ScoreReason::kNoAnswer};
  std::optional<double> expected = ToNumber(gold);
  if (expected && std::round(*answer * 1e6) == std::round(*expected * 1e6)) {
    return {1.0f, ScoreReason::kMatch};
  }
  return {0.0f, ScoreReason::kMismatch};
}

}  // namespace moerl
