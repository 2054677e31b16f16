#include "reward/answer_value.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace moerl {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Index one past the '}' that closes the '{' at `open`, or npos.
size_t MatchBrace(const std::string& s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      ++i;  // \{ and \} do not count
      continue;
    }
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i + 1;
  }
  return std::string::npos;
}

bool IsWrapperCommand(absl::string_view name) {
  return name == "boxed" || name == "text" || name == "textbf" || name == "textrm" ||
         name == "mathrm" || name == "mathbf" || name == "mbox" || name == "fbox";
}

// "\text{abc}" -> "abc" for each wrapper command, everywhere in `s`; an
// unterminated wrapper loses only its "\text{".
void UnwrapCommands(std::string& s) {
  size_t at = 0;
  while ((at = s.find('\\', at)) != std::string::npos) {
    size_t end = at + 1;
    while (end < s.size() && IsAlpha(s[end])) ++end;
    if (!IsWrapperCommand(absl::string_view(s).substr(at + 1, end - at - 1))) {
      at = end;
      continue;
    }
    size_t open = end;
    while (open < s.size() && s[open] == ' ') ++open;
    if (open >= s.size() || s[open] != '{') {
      s.erase(at, end - at);
      continue;
    }
    const size_t close = MatchBrace(s, open);
    if (close == std::string::npos) {
      s.erase(at, open + 1 - at);
    } else {
      s = s.substr(0, at) + s.substr(open + 1, close - open - 2) + s.substr(close);
    }
  }
}

void StripTrailingPunctuation(std::string& s) {
  while (!s.empty()) {
    const char c = s.back();
    if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?' || c == ' ' ||
        c == '\n' || c == '\t' || c == '\r') {
      s.pop_back();
    } else {
      break;
    }
  }
}

// Drops trailing unit words ("18 dollars", "3 apples each"); returns true if
// one of them was a percent word.
bool StripTrailingWords(std::string& s) {
  bool percent = false;
  while (true) {
    StripTrailingPunctuation(s);
    size_t start = s.size();
    while (start > 0 && IsAlpha(s[start - 1])) --start;
    if (start == s.size() || start == 0) return percent;
    const std::string word = absl::AsciiStrToLower(s.substr(start));
    if (word == "percent" || word == "percentage" || word == "pct") percent = true;
    s.erase(start);
  }
}

std::optional<double> ParseFraction(absl::string_view numerator, absl::string_view denominator) {
  std::optional<double> a = ParsePlainNumber(absl::StripAsciiWhitespace(numerator));
  std::optional<double> b = ParsePlainNumber(absl::StripAsciiWhitespace(denominator));
  if (!a || !b || *b == 0.0) return std::nullopt;
  return *a / *b;
}

// "\frac{a}{b}" (whole string), with an optional leading '-'.
std::optional<double> ParseLatexFraction(absl::string_view s) {
  bool negative = absl::ConsumePrefix(&s, "-");
  if (!absl::ConsumePrefix(&s, "\\frac")) return std::nullopt;
  const std::string rest(absl::StripLeadingAsciiWhitespace(s));
  if (rest.empty() || rest[0] != '{') return std::nullopt;
  const size_t close1 = MatchBrace(rest, 0);
  if (close1 == std::string::npos || close1 >= rest.size() || rest[close1] != '{') {
    return std::nullopt;
  }
  const size_t close2 = MatchBrace(rest, close1);
  if (close2 != rest.size()) return std::nullopt;
  std::optional<double> value =
      ParseFraction(absl::string_view(rest).substr(1, close1 - 2),
                    absl::string_view(rest).substr(close1 + 1, close2 - close1 - 2));
  if (value && negative) *value = -*value;
  return value;
}

}  // namespace

std::optional<double> ParsePlainNumber(absl::string_view text) {
  if (text.empty() || text.size() > 512) return std::nullopt;  // a bound on work, not on values
  size_t i = 0;
  bool negative = false;
  if (text[0] == '-' || text[0] == '+') {
    negative = text[0] == '-';
    ++i;
  }
  std::string digits;
  size_t group = 0;  // digits since the last comma
  bool seen_comma = false;
  for (; i < text.size() && (IsDigit(text[i]) || text[i] == ','); ++i) {
    if (text[i] == ',') {
      if (digits.empty() || (seen_comma && group != 3)) return std::nullopt;
      seen_comma = true;
      group = 0;
    } else {
      digits.push_back(text[i]);
      ++group;
    }
  }
  if (seen_comma && group != 3) return std::nullopt;
  if (i < text.size() && text[i] == '.') {
    digits.push_back('.');
    size_t decimals = 0;
    for (++i; i < text.size() && IsDigit(text[i]); ++i, ++decimals) digits.push_back(text[i]);
    if (decimals == 0) return std::nullopt;
  }
  if (i != text.size() || digits.empty() || digits == ".") return std::nullopt;
  const double value = std::strtod(digits.c_str(), nullptr);
  return negative ? -value : value;
}

std::string NormalizeAnswerText(absl::string_view text, bool* percent) {
  std::string s = absl::StrReplaceAll(
      text, {{"\\dfrac", "\\frac"}, {"\\tfrac", "\\frac"}, {"{,}", ","}, {"\\%", "%"},
             {"\\$", ""}, {"$", ""}, {"\\,", ""}, {"\\!", ""}, {"\\;", ""}, {"\\:", ""},
             {"\\ ", " "}, {"\\left", ""}, {"\\right", ""}, {"^{\\circ}", ""}, {"^\\circ", ""},
             {"\xe2\x82\xac", ""}, {"\xc2\xa3", ""}, {"\xc2\xa5", ""}, {"\\displaystyle", ""}});
  UnwrapCommands(s);
  // "x = 18" and "3 + 4 = 7": the value is what follows the last '='.
  const size_t equals = s.rfind('=');
  if (equals != std::string::npos) s.erase(0, equals + 1);
  bool is_percent = StripTrailingWords(s);
  StripTrailingPunctuation(s);
  while (!s.empty() && s.back() == '%') {
    is_percent = true;
    s.pop_back();
    StripTrailingPunctuation(s);
  }
  is_percent = StripTrailingWords(s) || is_percent;
  absl::string_view out = absl::StripAsciiWhitespace(s);
  absl::ConsumePrefix(&out, ":");
  out = absl::StripAsciiWhitespace(out);
  // "(5)": one pair of outer parentheses.
  if (out.size() >= 2 && out.front() == '(' && out.back() == ')') {
    out = absl::StripAsciiWhitespace(out.substr(1, out.size() - 2));
  }
  if (percent != nullptr) *percent = is_percent;
  return std::string(out);
}

std::optional<AnswerValue> ParseAnswerValue(absl::string_view text) {
  AnswerValue result;
  const std::string s = NormalizeAnswerText(text, &result.percent);
  if (s.empty()) return std::nullopt;
  std::optional<double> value = ParsePlainNumber(s);
  if (!value) value = ParseLatexFraction(s);
  if (!value) {
    const size_t slash = s.find('/');
    if (slash != std::string::npos && s.find('/', slash + 1) == std::string::npos) {
      value = ParseFraction(absl::string_view(s).substr(0, slash),
                            absl::string_view(s).substr(slash + 1));
    }
  }
  if (!value || !std::isfinite(*value)) return std::nullopt;
  result.value = *value;
  return result;
}

bool AnswerValuesMatch(const AnswerValue& gold, const AnswerValue& predicted) {
  auto round6 = [](double x) { return std::round(x * 1e6) / 1e6; };
  const double g = round6(gold.value);
  if (round6(predicted.value) == g) return true;
  return predicted.percent && round6(predicted.value / 100.0) == g;
}

}  // namespace moerl
