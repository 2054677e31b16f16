#include "dataset/synthetic.h"

#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "dataset/splitmix64.h"

namespace moerl {
namespace {

struct Person {
  const char* name;
  const char* pronoun;
};

constexpr Person kPeople[] = {{"Tom", "He"}, {"Mia", "She"}, {"Sam", "He"},  {"Ana", "She"},
                              {"Ben", "He"}, {"Lily", "She"}, {"Max", "He"}, {"Zoe", "She"}};
constexpr const char* kItems[] = {"apples", "pens",     "books", "coins",
                                  "cards",  "stickers", "eggs",  "marbles"};
constexpr int64_t kMaxFactor = 9;

enum class Op { kAdd, kSubtract, kMultiply, kDivide };

template <typename T, size_t N>
const T& Pick(SplitMix64& rng, const T (&items)[N]) {
  return items[rng.Below(N)];
}

// Divisors of `value` in [2, limit], for exact division.
std::vector<int64_t> Divisors(int64_t value, int64_t limit) {
  std::vector<int64_t> divisors;
  for (int64_t d = 2; d <= std::min(value, limit); ++d) {
    if (value % d == 0) divisors.push_back(d);
  }
  return divisors;
}

SyntheticProblem OneProblem(const SyntheticOptions& options, SplitMix64& rng) {
  const Person& person = Pick(rng, kPeople);
  const char* items = Pick(rng, kItems);
  const int steps = static_cast<int>(rng.Between(options.min_steps, options.max_steps));
  int64_t count = rng.Between(1, options.max_number);
  SyntheticProblem problem;
  problem.question = absl::StrCat(person.name, " has ", count, " ", items, ".");
  for (int step = 0; step < steps; ++step) {
    std::vector<Op> ops = {Op::kAdd};
    if (options.allow_subtract && count > 1) ops.push_back(Op::kSubtract);
    if (options.allow_multiply) ops.push_back(Op::kMultiply);
    const std::vector<int64_t> divisors =
        options.allow_divide ? Divisors(count, kMaxFactor) : std::vector<int64_t>{};
    if (!divisors.empty()) ops.push_back(Op::kDivide);
    const Op op = ops[rng.Below(ops.size())];
    int64_t k = 0, next = 0;
    const char* sign = "+";
    switch (op) {
      case Op::kAdd:
        k = rng.Between(1, options.max_number);
        next = count + k;
        absl::StrAppend(&problem.question, " ", person.pronoun, " gets ", k, " more ", items, ".");
        break;
      case Op::kSubtract:
        k = rng.Between(1, std::min(count - 1, options.max_number));
        next = count - k;
        sign = "-";
        absl::StrAppend(&problem.question, " ", person.pronoun, " gives ", k, " ", items,
                        " to a friend.");
        break;
      case Op::kMultiply:
        k = rng.Between(2, std::max<int64_t>(2, std::min(options.max_number, kMaxFactor)));
        next = count * k;
        sign = "*";
        absl::StrAppend(&problem.question, " Then ", person.pronoun == std::string("He") ? "his" : "her",
                        " number of ", items, " becomes ", k, " times as large.");
        break;
      case Op::kDivide:
        k = divisors[rng.Below(divisors.size())];
        next = count / k;
        sign = "/";
        absl::StrAppend(&problem.question, " ", person.pronoun, " splits them into ", k,
                        " equal piles and keeps one pile.");
        break;
    }
    absl::StrAppend(&problem.answer, problem.answer.empty() ? "" : "\n", person.name, " has ",
                    count, " ", sign, " ", k, " = <<", count, sign, k, "=", next, ">>", next, " ",
                    items, step + 1 == steps ? " now." : ".");
    count = next;
  }
  absl::StrAppend(&problem.question, " How many ", items, " does ", person.name, " have now?");
  absl::StrAppend(&problem.answer, "\n#### ", count);
  problem.gold = count;
  return problem;
}

}  // namespace

absl::Status SyntheticOptions::Validate() const {
  if (min_steps < 1 || max_steps < min_steps || max_steps > 20) {
    return absl::InvalidArgumentError(absl::StrCat(
        "synthetic steps must satisfy 1 <= min_steps <= max_steps <= 20, got min_steps=",
        min_steps, " max_steps=", max_steps));
  }
  if (max_number < 2 || max_number > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("synthetic max_number must be in [2, 1000000], got ", max_number));
  }
  return absl::OkStatus();
}

SyntheticOptions SyntheticLevel(int level) {
  level = std::clamp(level, 0, kMaxSyntheticLevel);
  SyntheticOptions o;
  constexpr int kSteps[] = {1, 1, 2, 2, 3, 4};
  constexpr int64_t kMaxNumber[] = {9, 9, 20, 20, 100, 1000};
  o.min_steps = o.max_steps = kSteps[level];
  o.max_number = kMaxNumber[level];
  o.allow_subtract = level >= 1;
  o.allow_multiply = level >= 3;
  o.allow_divide = level >= 5;
  return o;
}

std::vector<SyntheticProblem> GenerateSynthetic(const SyntheticOptions& options, int64_t count) {
  SplitMix64 rng(options.seed);
  std::vector<SyntheticProblem> problems;
  problems.reserve(static_cast<size_t>(std::max<int64_t>(count, 0)));
  for (int64_t i = 0; i < count; ++i) problems.push_back(OneProblem(options, rng));
  return problems;
}

std::string SyntheticProblemJson(const SyntheticProblem& problem) {
  nlohmann::ordered_json row;  // GSM8K's key order: question, answer
  row["question"] = problem.question;
  row["answer"] = problem.answer;
  return row.dump();
}

}  // namespace moerl
