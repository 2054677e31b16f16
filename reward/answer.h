// First-cut GSM8K answer check: the last number in a completion against the
// gold answer, compared numerically after removing thousands separators.
//
//   Score s = ScoreCompletion("... so she has 1,200 apples.", "1200");
//   s.reward == 1.0f, s.reason == ScoreReason::kMatch
//
// Thread-safe; no state.
#ifndef MOERL_REWARD_ANSWER_H_
#define MOERL_REWARD_ANSWER_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace moerl {

enum class ScoreReason { kNoAnswer, kMismatch, kMatch };

struct Score {
  float reward = 0.0f;
  ScoreReason reason = ScoreReason::kNoAnswer;
};

const char* ScoreReasonName(ScoreReason reason);

// The last number in `text` ("-1,234.5" -> "-1234.5"), or nullopt.
std::optional<std::string> ExtractLastNumber(absl::string_view text);

// 1 if the last number of `completion` equals `gold` numerically (to 6
// decimals), else 0, with the reason.
Score ScoreCompletion(absl::string_view completion, absl::string_view gold);

}  // namespace moerl

#endif  // MOERL_REWARD_ANSWER_H_
