// Turning an extracted answer ("\$1,200", "\frac{7}{2}", "18 \text{ apples}",
// "45\%") into a number, and comparing two numbers the way the GSM8K reward
// does (rounded to 6 decimals).
//
//   std::optional<AnswerValue> v = ParseAnswerValue("\\$1{,}200");
//   v->value == 1200, v->percent == false
//   AnswerValuesMatch(*ParseAnswerValue("18"), *ParseAnswerValue("18.0000001"))  // true
//   ParseAnswerValue("18 dollars")                      // nullopt (math-verify: 0)
//   ParseAnswerValue("18 dollars", UnitRule::kLenient)  // 18
//
// Two rules for what may sit around the number (reward.lenient_units):
//
// UnitRule::kMathVerify (the default) does what math-verify 0.9.0 (with
// latex2sympy2_extended 1.11) does to a boxed answer, so that rewards equal
// AReaL's: `$`, `\$`, `\!`, spacing commands, \left/\right and `{,}` go;
// \mathrm/\mathbf/\textbf/... count as \text; a trailing \text{...} or
// \mbox{...} (from the first one on, with an optional ^2) is dropped,
// whatever it says; then up to two trailing words from latex2sympy's unit
// list (apple, hour, minute, mile, cm, kg, ..., with an optional s/es) go.
// Anything else is not a number: "18 dollars", "18 people", "18 cookies"
// ("dollar", "people", "cookie" are not on the list; math-verify reads them
// as a product of symbols), "18." (a trailing full stop), "\text{1,250}" and
// "\text{18.5}" (inside \text only a plain integer reads as a number), "€18",
// "18~apples", "1,250\%" (latex2sympy's set {1, 2.5}). A '~', a thousands
// comma inside \frac{}{} and a trailing full stop are parse failures
// (MathVerifyCannotParse), not just non-numbers. A boxed percent matches its
// own value only when written as a whole number (ScoreCompletion).
//
// UnitRule::kLenient strips what a reader would: every wrapper (\text{},
// \mathrm{}, \textbf{}, \mbox{}) is unwrapped wherever it is, currency
// signs, trailing punctuation and any trailing words go. It accepts all the
// examples above that kMathVerify rejects.
//
// Both then take what follows the last '=' ("x = 5"), treat a trailing `%`,
// `\%` or "percent" as `percent`, drop one pair of outer parentheses, and
// need a plain number (thousands commas in groups of three, decimals, a
// leading minus), `\frac{a}{b}` / `\dfrac{a}{b}` or `a/b`.
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
  // Whether a percent also matches its own value ("45%" vs gold 45), not only
  // value/100 (vs gold 0.45). math-verify allows that for a boxed percent only
  // when it is written as a whole number ("\\boxed{18\\%}" vs 18 is 1,
  // "\\boxed{2.5\\%}" vs 2.5 is 0); ScoreCompletion clears it there.
  bool percent_matches_value = true;
};

enum class UnitRule {
  kMathVerify,  // as AReaL's math-verify reward (the default)
  kLenient,     // reward.lenient_units=true
};

// Applies the normalisations above and returns the text that should be a
// number (kLenient: "\\text{\\$1,200}." -> "1,200").
std::string NormalizeAnswerText(absl::string_view text, bool* percent,
                                UnitRule rule = UnitRule::kMathVerify);

// Under UnitRule::kMathVerify: whether math-verify's LaTeX parser fails on
// this boxed text outright ("18.", "18;", "€18", "(18"), rather than reading
// it as something that is not the number ("18 dollars"). After such a
// failure math-verify looks for the answer outside the box (anchors, then the
// last number), and ScoreCompletion does the same. The test is on what is
// left after NormalizeAnswerText: a trailing . , ; : ? ~ or \\, a byte
// outside ASCII, or unbalanced parentheses.
bool MathVerifyCannotParse(absl::string_view text);

// A plain number, fraction or a/b, after NormalizeAnswerText; nullopt when
// what is left is not a number.
std::optional<AnswerValue> ParseAnswerValue(absl::string_view text,
                                            UnitRule rule = UnitRule::kMathVerify);

// True if the two values are equal after rounding to 6 decimals; a percent
// prediction also matches its value divided by 100.
bool AnswerValuesMatch(const AnswerValue& gold, const AnswerValue& predicted);

// Parses a plain number with optional leading '-' / '+', thousands commas in
// groups of three and a decimal part ("-1,234.5", ".5"); the whole of `text`
// must be the number (at most 512 characters).
std::optional<double> ParsePlainNumber(absl::string_view text);

}  // namespace moerl

#endif  // MOERL_REWARD_ANSWER_VALUE_H_
