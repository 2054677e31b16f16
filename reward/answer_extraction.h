// Finding the final answer in a model's completion, in the order the GSM8K
// reward uses:
//
//   1. \boxed{...} (brace-matched; an empty or unterminated box is ignored).
//      Numbers inside an unterminated box are not answers.
//      With several boxes every one is returned; the verifier demands they
//      agree, so a model cannot hedge by boxing two answers.
//   2. An "answer" anchor: "Final answer: 18", "The answer is $18$.",
//      "**Answer:** 18". Anchors with a colon ("answer:") win over the bare
//      word; among equals the rightmost wins; the answer is the number after
//      the last '=' within 100 characters of the anchor ("answer is 3+4 = 7"),
//      else the first number starting within 50 characters, on the same line
//      (or the next one when the line ends in ':').
//   3. The first number after the last "####".
//   4. The last number in the text; when the text ends in arithmetic around
//      it ("so he needs 40 / 10 = ", "x = 270 - 95 - 80"), that expression
//      (kLastExpression, valued by reward/arithmetic.h), as math-verify does.
//
//   ExtractedAnswer a = ExtractAnswer("so 3+4=7.\nThe answer is \\boxed{7}.");
//   a.source == AnswerSource::kBoxed, a.texts == {"7"}
//
// A "number" is a run of digits not glued to a letter on its left ("x2" and
// "v1.5" are not numbers), with thousands commas in groups of three, a
// decimal part, a leading '-' that is not a binary minus, and an optional
// "/denominator" or trailing '%'; `\frac{a}{b}` also counts.
//
// This follows math-verify (AReaL's GSM8K reward at HEAD) closely enough
// that, with reward/answer_value.h's default UnitRule, the verdicts agree on
// every completion of reward/testdata/reward_corpus.jsonl and
// boxed_forms.jsonl (reward/reward_agreement_test.cc). (Where math-verify cannot parse
// a box it looks outside it: ExtractAnswerOutsideBoxes.)
//
// Thread-safe; no state. Linear in the completion's length.
#ifndef MOERL_REWARD_ANSWER_EXTRACTION_H_
#define MOERL_REWARD_ANSWER_EXTRACTION_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moerl {

enum class AnswerSource { kNone, kBoxed, kAnchor, kHashes, kLastNumber, kLastExpression };

const char* AnswerSourceName(AnswerSource source);

struct ExtractedAnswer {
  AnswerSource source = AnswerSource::kNone;
  // Raw answer texts (one, or one per box), not yet normalised.
  std::vector<std::string> texts;
};

ExtractedAnswer ExtractAnswer(absl::string_view completion);

// Steps 2 to 4 with every complete \boxed{...} / \fbox{...} blanked out:
// where math-verify looks when a box does not parse (see
// MathVerifyCannotParse in reward/answer_value.h).
ExtractedAnswer ExtractAnswerOutsideBoxes(absl::string_view completion);

// Contents of every complete, non-empty \boxed{...} (or \fbox{...}), in order.
std::vector<std::string> FindBoxedContents(absl::string_view text);

// Half-open byte range of a number token in a text.
struct TokenSpan {
  size_t begin = 0;
  size_t end = 0;
};

// The first number token that starts at or after `from` and before `limit`.
std::optional<TokenSpan> NextNumberToken(absl::string_view text, size_t from,
                                         size_t limit = absl::string_view::npos);

}  // namespace moerl

#endif  // MOERL_REWARD_ANSWER_EXTRACTION_H_
