#include "reward/arithmetic.h"

#include "gtest/gtest.h"

namespace moerl {
namespace {

// Oracle: Python's evaluation of the same text (math-verify hands it to
// sympy's parse_expr with '^' turned into '**').
TEST(EvaluateArithmetic, FollowsPythonPrecedence) {
  EXPECT_EQ(EvaluateArithmetic("270 - 95 - 80"), 95.0);
  EXPECT_EQ(EvaluateArithmetic("40 / 10 "), 4.0);
  EXPECT_EQ(EvaluateArithmetic("2 + 3 * 4"), 14.0);
  EXPECT_EQ(EvaluateArithmetic("(2 + 3) * 4"), 20.0);
  EXPECT_EQ(EvaluateArithmetic("2^3^2"), 512.0);
  EXPECT_EQ(EvaluateArithmetic("-2^2"), -4.0);
  EXPECT_EQ(EvaluateArithmetic("2**-1"), 0.5);
  EXPECT_EQ(EvaluateArithmetic("1.5*4"), 6.0);
  EXPECT_EQ(EvaluateArithmetic("--3"), 3.0);
  EXPECT_EQ(EvaluateArithmetic("\n12\n/ 4"), 3.0);
}

TEST(EvaluateArithmetic, RejectsWhatPythonRejects) {
  for (const char* text : {"", "40 10", "3 +", "(3 + 4", "3 + 4)", "3 \xc3\x97 4", "2(3)",
                           "x + 1", "1/0", "3 % 4", "."}) {
    EXPECT_EQ(EvaluateArithmetic(text), std::nullopt) << text;
  }
}

TEST(EvaluateArithmetic, BoundsNesting) {
  EXPECT_EQ(EvaluateArithmetic(std::string(100, '(') + "1" + std::string(100, ')')),
            std::nullopt);
  EXPECT_EQ(EvaluateArithmetic(std::string(100, '-') + "1"), std::nullopt);
  EXPECT_EQ(EvaluateArithmetic(std::string(10, '(') + "1" + std::string(10, ')')), 1.0);
}

}  // namespace
}  // namespace moerl
