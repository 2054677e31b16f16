// Turning an extracted answer ("\$1,200", "\frac{7}{2}", "18 \text{ apples}",
// "45\%") into a number, and comparing two numbers the way the GSM8K reward
// does (rounded to 6 decimals).
//
//   std::optional<AnswerValue> v = ParseAnswerValue("\\boxed{\\$1{,}200.}");
//   v->value == 1200, v->percent == false
//   AnswerValuesMatch(*ParseAnswerValue("18"), *ParseAnswerValue("18.0000001"))  // true
//
// Normalisations, in order: LaTeX wrappers (\boxed{}, \text{}, \mathrm{},
// \textbf{}, \mbox{}) are unwrapped; `$`, `\$`, spacing commands (\, \! \;),
// \left/\right, degree marks and `{,}` are dropped; "x = 5" keeps what follows
// the last '='; currency signs, trailing punctuation and trailing unit words
// ("dollars", "apples") go; a trailing `%`, `\%` or "percent" sets `percent`;
// what is left must be a plain number (thousands commas in groups of three,
// decimals, a leading minus), `\frac{a}{b}` / `\dfrac{a}{b}` or `a/b`.
//
// Thread-safe; no state.
#ifndef MOERL_REWARD_ANSWER_VALUE_H_
#define MOERL_REWARD_ANSWER_VALUE_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace moerl {

struct AnswerValue {
  double value = 0.0;
  // Written with a percent sign or word: "45%" is value 45, percent true,
  // and matches both 45 and 0.45.
  bool percent = false;
};

// Applies the LaTeX/currency/unit/punctuation normalisations above and
// returns the text that should be a number ("\\text{\\$1,200}." -> "1,200").
std::string NormalizeAnswerText(absl::string_view text, bool* percent);

// A plain number, fraction or a/b, after NormalizeAnswerText; nullopt when
// what is left is not a number.
std::optional<AnswerValue> ParseAnswerValue(absl::string_view text);

// True if the two values are equal after rounding to 6 decimals; a percent
// prediction also matches its value divided by 100.
bool AnswerValuesMatch(const AnswerValue& gold, const AnswerValue& predicted);

// Parses a plain number with optional leading '-' / '+', thousands commas in
// groups of three and a decimal part ("-1,234.5", ".5"); the whole of `text`
// must be the number (at most 512 characters).
std::optional<double> ParsePlainNumber(absl::string_view text);

}  // namespace moerl

#endif  // MOERL_REWARD_ANSWER_VALUE_H_
