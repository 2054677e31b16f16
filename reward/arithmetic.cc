#include "reward/arithmetic.h"

#include <cmath>
#include <cstdlib>
#include <string>

namespace moerl {
namespace {

constexpr int kMaxDepth = 64;

// Recursive descent over Python's grammar for this subset:
//   sum    := term (('+' | '-') term)*
//   term   := factor (('*' | '/') factor)*
//   factor := ('+' | '-') factor | power
//   power  := atom ('**' factor)?
//   atom   := number | '(' sum ')'
class Parser {
 public:
  explicit Parser(std::string text) : s_(std::move(text)) {}

  std::optional<double> ParseAll() {
    std::optional<double> value = Sum(0);
    SkipSpace();
    if (!value || i_ != s_.size() || !std::isfinite(*value)) return std::nullopt;
    return value;
  }

 private:
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' ||
                              s_[i_] == '\r' || s_[i_] == '\f' || s_[i_] == '\v')) {
      ++i_;
    }
  }
  bool Peek(absl::string_view token) {
    SkipSpace();
    return absl::string_view(s_).substr(i_, token.size()) == token;
  }
  bool Take(absl::string_view token) {
    if (!Peek(token)) return false;
    i_ += token.size();
    return true;
  }

  std::optional<double> Sum(int depth) {
    std::optional<double> value = Term(depth);
    while (value) {
      if (Take("+")) {
        std::optional<double> rhs = Term(depth);
        if (!rhs) return std::nullopt;
        *value += *rhs;
      } else if (Take("-")) {
        std::optional<double> rhs = Term(depth);
        if (!rhs) return std::nullopt;
        *value -= *rhs;
      } else {
        break;
      }
    }
    return value;
  }

  std::optional<double> Term(int depth) {
    std::optional<double> value = Factor(depth);
    while (value) {
      if (Peek("**")) break;  // a power belongs to the factor on its left
      if (Take("*")) {
        std::optional<double> rhs = Factor(depth);
        if (!rhs) return std::nullopt;
        *value *= *rhs;
      } else if (Take("/")) {
        std::optional<double> rhs = Factor(depth);
        if (!rhs || *rhs == 0.0) return std::nullopt;
        *value /= *rhs;
      } else {
        break;
      }
    }
    return value;
  }

  std::optional<double> Factor(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    if (Take("-")) {
      std::optional<double> value = Factor(depth + 1);
      if (value) *value = -*value;
      return value;
    }
    if (Take("+")) return Factor(depth + 1);
    return Power(depth);
  }

  std::optional<double> Power(int depth) {
    std::optional<double> base = Atom(depth);
    if (!base || !Take("**")) return base;
    std::optional<double> exponent = Factor(depth + 1);
    if (!exponent) return std::nullopt;
    return std::pow(*base, *exponent);
  }

  std::optional<double> Atom(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    if (Take("(")) {
      std::optional<double> value = Sum(depth + 1);
      if (!value || !Take(")")) return std::nullopt;
      return value;
    }
    SkipSpace();
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    const size_t digits = i_ - start;
    size_t decimals = 0;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_, ++decimals;
    }
    if (digits + decimals == 0) return std::nullopt;
    return std::strtod(s_.substr(start, i_ - start).c_str(), nullptr);
  }

  std::string s_;
  size_t i_ = 0;
};

}  // namespace

std::optional<double> EvaluateArithmetic(absl::string_view expression) {
  std::string text(expression);
  for (size_t at = text.find('^'); at != std::string::npos; at = text.find('^', at + 2)) {
    text.replace(at, 1, "**");
  }
  return Parser(std::move(text)).ParseAll();
}

}  // namespace moerl
