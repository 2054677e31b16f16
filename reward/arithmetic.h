// The value of a plain arithmetic expression as math-verify reads one at the
// end of a completion ("x = 270 - 95 - 80", "he needs 40 / 10 = "): numbers
// with an optional decimal part, + - * / ^ (power, as Python's **), unary
// signs and parentheses, with Python's precedence (** binds tighter than a
// unary minus on its left and is right-associative).
//
//   EvaluateArithmetic("270 - 95 - 80") == 95
//   EvaluateArithmetic("2^3^2") == 512
//   EvaluateArithmetic("40 10")         // nullopt: not an expression
//
// Anything else (letters, '×', '÷', an unbalanced parenthesis, a dangling
// operator, division by zero) is nullopt: math-verify then falls back to the
// last plain number. Thread-safe; no state; linear in the text (nesting is
// bounded at 64 levels).
#ifndef MOERL_REWARD_ARITHMETIC_H_
#define MOERL_REWARD_ARITHMETIC_H_

#include <optional>

#include "absl/strings/string_view.h"

namespace moerl {

std::optional<double> EvaluateArithmetic(absl::string_view expression);

}  // namespace moerl

#endif  // MOERL_REWARD_ARITHMETIC_H_
