// The GSM8K reward: 1 if the completion's final answer equals the gold
// answer, else 0, with the reason (for stats) and what was extracted.
//
//   Score s = ScoreCompletion("... so she makes \\boxed{\\$18}.", "18");
//   s.reward == 1.0f, s.reason == ScoreReason::kMatch, s.source == AnswerSource::kBoxed
//
// By default the verdicts follow math-verify as AReaL's gsm8k_reward_fn calls
// it, including where math-verify is strict about what surrounds a boxed
// number (UnitRule::kMathVerify). reward.lenient_units=true (UnitRule::kLenient)
// accepts what a reader would; the two differ only on boxed answers:
//
//   boxed answer                 default (math-verify)   lenient_units=true
//   \boxed{18 dollars}           0: "dollar" is not a     1
//   \boxed{18 people}               latex2sympy unit word
//   \boxed{18 apples}            1: "apple" is one        1
//   \boxed{18 \text{ dollars}}   1: a trailing \text{}    1
//                                   is dropped whatever
//                                   it says
//   \boxed{\text{18 apples}}     0                        1
//   \boxed{\text{1,250}}         0: only a plain integer  1
//   \boxed{\text{18.5}}             reads inside \text{}
//   \boxed{18.}, \boxed{€18}     latex2sympy cannot      1
//   \boxed{18~feet}                 parse the box: the last
//                                   number outside it
//                                   decides (none: 0)
//   \boxed{2.5\%} vs gold 2.5    0: only 0.025 (a whole   1
//                                   number such as 18\%
//                                   also matches 18)
//
// (reward/answer_value.h has the rules; reward/reward_agreement_test.cc
// measures both modes against math-verify on two labelled corpora.)
//
// Extraction order and normalisations are in reward/answer_extraction.h and
// reward/answer_value.h. The gold is the text after GSM8K's "####" (a whole
// solution ending in "#### N" is accepted too). Values are compared after
// rounding to 6 decimals. Several boxes must all hold the same value.
//
// Thread-safe; no state; no allocation beyond the extracted strings.
#ifndef MOERL_REWARD_ANSWER_H_
#define MOERL_REWARD_ANSWER_H_

#include <string>

#include "absl/strings/string_view.h"
#include "reward/answer_extraction.h"
#include "reward/answer_value.h"

namespace moerl {

enum class ScoreReason {
  kNoAnswer,     // nothing that looks like an answer
  kMismatch,     // an answer that is not the gold value (or boxes disagree)
  kMatch,        // the gold value
  kInvalidGold,  // the gold answer itself is not a number (a dataset bug)
};

struct Score {
  float reward = 0.0f;
  ScoreReason reason = ScoreReason::kNoAnswer;
  AnswerSource source = AnswerSource::kNone;
  // The extracted answer as written (first box when there are several).
  std::string answer;
};

// "no_answer", "mismatch", "match", "invalid_gold": Trajectory.reward_reason.
const char* ScoreReasonName(ScoreReason reason);

Score ScoreCompletion(absl::string_view completion, absl::string_view gold,
                      UnitRule rule = UnitRule::kMathVerify);

}  // namespace moerl

#endif  // MOERL_REWARD_ANSWER_H_
