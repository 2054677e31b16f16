#include "dataset/synthetic.h"

#include <set>

#include "dataset/gsm8k.h"
#include "gtest/gtest.h"
#include "reward/answer.h"

namespace moerl {
namespace {

TEST(GenerateSynthetic, RowsAreValidGsm8kWithConsistentGold) {
  for (int level = 0; level <= kMaxSyntheticLevel; ++level) {
    SyntheticOptions options = SyntheticLevel(level);
    options.seed = 100 + level;
    ASSERT_TRUE(options.Validate().ok());
    for (const SyntheticProblem& p : GenerateSynthetic(options, 300)) {
      absl::StatusOr<Gsm8kRow> row = ParseGsm8kRow(SyntheticProblemJson(p), "synthetic", 1);
      ASSERT_TRUE(row.ok()) << row.status();
      EXPECT_EQ(row->gold_answer, std::to_string(p.gold));
      EXPECT_GE(p.gold, 0) << p.question;
      // The worked solution is itself a correct completion.
      EXPECT_EQ(ScoreCompletion(p.answer, row->gold_answer).reward, 1.0f) << p.answer;
    }
  }
}

TEST(GenerateSynthetic, SameSeedSameProblemsOtherSeedOthers) {
  SyntheticOptions a = SyntheticLevel(3);
  a.seed = 5;
  SyntheticOptions b = a;
  b.seed = 6;
  auto text = [](const SyntheticOptions& o) {
    std::string all;
    for (const SyntheticProblem& p : GenerateSynthetic(o, 50)) all += SyntheticProblemJson(p);
    return all;
  };
  EXPECT_EQ(text(a), text(a));
  EXPECT_NE(text(a), text(b));
}

// Pinned: the embedded default's data must not drift between releases.
TEST(GenerateSynthetic, EasiestLevelIsShortWithSmallNumbers) {
  SyntheticOptions options = SyntheticLevel(0);
  options.seed = 1;
  std::vector<SyntheticProblem> problems = GenerateSynthetic(options, 200);
  std::set<int64_t> golds;
  for (const SyntheticProblem& p : problems) {
    EXPECT_LE(p.question.size(), 100u) << p.question;
    EXPECT_LE(p.gold, 18);
    EXPECT_GE(p.gold, 2);
    golds.insert(p.gold);
  }
  EXPECT_GE(golds.size(), 10u);  // varied answers, not one constant
  EXPECT_EQ(SyntheticProblemJson(problems[0]), R"({"question":"Mia has 3 marbles. She gets 6 more marbles. How many marbles does Mia have now?","answer":"Mia has 3 + 6 = <<3+6=9>>9 marbles now.\n#### 9"})");
}

TEST(SyntheticOptions, ValidateNamesTheBadKnob) {
  SyntheticOptions o;
  o.min_steps = 3;
  o.max_steps = 2;
  EXPECT_EQ(o.Validate().message(),
            "synthetic steps must satisfy 1 <= min_steps <= max_steps <= 20, got min_steps=3 "
            "max_steps=2");
  o = SyntheticOptions();
  o.max_number = 1;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SyntheticLevel, HarderLevelsTakeMoreSteps) {
  EXPECT_EQ(SyntheticLevel(0).max_steps, 1);
  EXPECT_EQ(SyntheticLevel(kMaxSyntheticLevel).max_steps, 4);
  EXPECT_TRUE(SyntheticLevel(5).allow_divide);
  EXPECT_FALSE(SyntheticLevel(0).allow_subtract);
}

}  // namespace
}  // namespace moerl
