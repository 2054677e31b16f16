#include "reward/answer_value.h"

#include <algorithm>
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

std::string NormalizeLenient(absl::string_view text, bool* percent) {
  std::string s = absl::StrReplaceAll(
      text, {{"\\dfrac", "\\frac"}, {"\\tfrac", "\\frac"}, {"{,}", ","}, {"\\%", "%"},
             {"\\$", ""}, {"$", ""}, {"\\,", ""}, {"\\!", ""}, {"\\;", ""}, {"\\:", ""},
             {"\\ ", " "}, {"~", " "}, {"\\left", ""}, {"\\right", ""}, {"^{\\circ}", ""},
             {"^\\circ", ""},
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


// latex2sympy2_extended 1.11's unit words (math_normalization.py `units`), in
// its order, with its "integer" "point" that Python joins into one word.
constexpr const char* kMathVerifyUnits[] = {
    "integerpoint", "feet", "sue", "digit", "pound", "meal", "edge", "student",
    "children ticket", "multiple", "east", "degree", "mph", "kmph", "ft", "m square", " m east",
    "sq m", "deg", "mile", "q .", "monkey", "prime", "ratio", "profit of rs", "rd", "o", "gm",
    "p . m", "lb", "tile", "per", "dm", "lt", "gain", "ab", "way", "west", "a .", "b .", "c .",
    "d .", "e .", "f .", "g .", "h .", "t", "h", "no change", "men", "soldier", "pie", "bc",
    "excess", "st", "inches", "noon", "cent", "by", "gal", "kmh", "c", "acre", "rise", "a . m",
    "th", "\xcf\x80 r 2", "sq", "mark", "l", "toy", "coin", "sq . m", "gallon", "\xc2\xb0 f",
    "profit", "minw", "yr", "women", "am", "pm", "hr", "cu cm", "square",
    "v \xc3\xa2 \xe2\x82\xac \xe2\x84\xa2", "are", "rupee", "rounds", "cubic", "cc", "mtr", "s",
    "ohm", "number", "kmph", "day", "hour", "minute", "min", "second", "man", "woman", "sec",
    "cube", "mt", "sq inch", "mp", "\xe2\x88\x8f cm \xc2\xb3", "hectare", "more", "sec", "unit",
    "cu . m", "cm 2", "rs .", "rs", "kg", "g", "month", "km", "m", "cm", "mm", "apple", "liter",
    "loss", "yard", "pure", "year", "increase", "decrease", "d", "less", "Surface", "litre",
    "pi sq m", "s .", "metre", "meter", "inch",
};

bool IsWordChar(char c) { return IsDigit(c) || IsAlpha(c) || c == '_'; }  // regex \w

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// One substitution of latex2sympy's units_regex,
// `(\d|\}|\s)\s*(?:UNIT)(?:s|es)?\s*$` -> `\1`: the leftmost match wins.
bool StripOneListedUnit(std::string& s) {
  size_t end = s.size();
  while (end > 0 && IsSpace(s[end - 1])) --end;
  size_t best = std::string::npos;  // index of the character kept as \1
  for (absl::string_view unit : kMathVerifyUnits) {
    for (absl::string_view suffix : {"", "s", "es"}) {
      const size_t size = unit.size() + suffix.size();
      if (size > end || s.compare(end - size, unit.size(), unit.data(), unit.size()) != 0 ||
          s.compare(end - suffix.size(), suffix.size(), suffix.data(), suffix.size()) != 0) {
        continue;
      }
      const size_t at = end - size;
      size_t k = at;
      while (k > 0 && IsSpace(s[k - 1])) --k;
      size_t start = std::string::npos;
      if (k > 0 && (IsDigit(s[k - 1]) || s[k - 1] == '}')) {
        start = k - 1;
      } else if (k < at) {
        start = k;
      }
      if (start != std::string::npos && (best == std::string::npos || start < best)) best = start;
    }
  }
  if (best == std::string::npos) return false;
  s.erase(best + 1);
  return true;
}

// latex2sympy's unit_superscript_regex, `(\\(?:text|mbox){.*?})(\^\d|\{\^\d\})?$`
// -> "": from the first \text{ or \mbox{ to the end, if the text ends in '}'
// (optionally followed by ^N or {^N}).
void StripTrailingTextCommand(std::string& s) {
  size_t end = s.size();
  if (end >= 2 && s[end - 2] == '^' && IsDigit(s[end - 1])) {
    end -= 2;
  } else if (end >= 4 && s.compare(end - 4, 2, "{^") == 0 && IsDigit(s[end - 2]) &&
             s[end - 1] == '}') {
    end -= 4;
  }
  if (end == 0 || s[end - 1] != '}') return;
  const size_t text = s.find("\\text{");
  const size_t mbox = s.find("\\mbox{");
  const size_t first = std::min(text, mbox);
  if (first == std::string::npos || first + 6 >= end) return;
  const std::string rest(absl::StripAsciiWhitespace(absl::string_view(s).substr(0, first)));
  if (!rest.empty()) s = rest;
}

bool LatexParseFails(absl::string_view s) {
  if (s.empty()) return false;
  // latex2sympy raises on a thousands comma inside \frac{}{}.
  if (absl::StrContains(s, "\\frac") && absl::StrContains(s, ",")) return true;
  if (absl::EndsWith(s, "\\\\")) return true;
  if (absl::string_view(".,;:?~").find(s.back()) != absl::string_view::npos) return true;
  int depth = 0;
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80 || c == '~') return true;
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0) return true;
  }
  return depth != 0;
}

// A ',' outside braces ("\\frac{1,250}{1}" has none).
bool HasTopLevelComma(absl::string_view s) {
  int depth = 0;
  for (char c : s) {
    if (c == '{') ++depth;
    if (c == '}') --depth;
    if (c == ',' && depth == 0) return true;
  }
  return false;
}

struct MathVerifyText {
  std::string text;  // what should be a number
  bool percent = false;
  bool parse_fails = false;  // latex2sympy raises (see MathVerifyCannotParse)
};

MathVerifyText NormalizeMathVerify(absl::string_view text) {
  MathVerifyText result;
  // The content of a box given whole (math-verify's extract_boxed_content).
  text = absl::StripAsciiWhitespace(text);
  while ((absl::StartsWith(text, "\\boxed{") || absl::StartsWith(text, "\\fbox{")) &&
         absl::EndsWith(text, "}")) {
    const size_t open = text.find('{');
    text = absl::StripAsciiWhitespace(text.substr(open + 1, text.size() - open - 2));
  }
  // latex2sympy's basic_latex step (the parts a GSM8K answer can meet).
  std::string s = absl::StrReplaceAll(
      text, {{"\\displaystyle", ""}, {"\\ ", " "}, {"\\$", ""}, {"$", ""}, {"\\!", ""},
             {"\\mathrm", "\\text"}, {"\\mathit", "\\text"}, {"\\mathbf", "\\text"},
             {"\\textnormal", "\\text"}, {"\\textbf", "\\text"}, {"\\textit", "\\text"},
             {"\\textrm", "\\text"}, {"\\dfrac", "\\frac"}, {"\\tfrac", "\\frac"},
             {"\\cfrac", "\\frac"}, {"{,}", ","}, {"\\left", ""}, {"\\right", ""},
             {"\\text{percent}", "%"}, {"\\text{percentage}", "%"}, {"^{\\circ}", ""},
             {"^\\circ", ""}, {"\\quad", " "}, {"\n", " "}, {"\t", " "}});
  // Percent words (after a space or not) become '%'.
  for (absl::string_view word : {"percentage", "percent", "pct"}) {
    for (size_t at = s.find(word.data(), 0, word.size()); at != std::string::npos;
         at = s.find(word.data(), at, word.size())) {
      const size_t after = at + word.size();
      if ((at > 0 && IsWordChar(s[at - 1])) || (after < s.size() && IsWordChar(s[after]))) {
        at = after;
        continue;
      }
      size_t from = at;
      while (from > 0 && IsSpace(s[from - 1])) --from;
      s.replace(from, after - from, "%");
      at = from + 1;
    }
  }
  // latex2sympy's units step.
  StripTrailingTextCommand(s);
  for (int pass = 0; pass < 2; ++pass) {
    std::string stripped = s;
    if (StripOneListedUnit(stripped) && !stripped.empty()) s = stripped;
  }
  // latex2sympy reads thousands commas only in a string that is nothing but
  // the number; "1,250\\," is the set {1, 250}.
  // (A trailing plain '%' is left out of that test: plain-text numbers such
  // as "1,234%" reach here too, and math-verify reads those as numbers; a
  // boxed "1,250\\%" is the set {1, 2.5}.)
  absl::string_view bare = absl::StripAsciiWhitespace(s);
  if (!absl::EndsWith(bare, "\\%") && absl::ConsumeSuffix(&bare, "%")) {
    bare = absl::StripTrailingAsciiWhitespace(bare);
  }
  const bool comma_set = HasTopLevelComma(absl::StrReplaceAll(bare, {{"\\,", ""}})) &&
                         !ParsePlainNumber(bare);
  // What latex2sympy's grammar skips or reads as a number.
  s = absl::StrReplaceAll(s, {{"\\,", ""}, {"\\;", ""}, {"\\:", ""}, {"\\ ", " "}, {"\\%", "%"}});
  result.parse_fails = LatexParseFails(absl::StripAsciiWhitespace(s));
  if (comma_set && !result.parse_fails) {
    result.text = "\\text{}";  // not a number
    return result;
  }
  const size_t equals = s.rfind('=');
  if (equals != std::string::npos) s.erase(0, equals + 1);
  absl::string_view out = absl::StripAsciiWhitespace(s);
  bool is_percent = false;
  while (absl::ConsumeSuffix(&out, "%")) {
    is_percent = true;
    out = absl::StripTrailingAsciiWhitespace(out);
  }
  if (out.size() >= 2 && out.front() == '(' && out.back() == ')') {
    out = absl::StripAsciiWhitespace(out.substr(1, out.size() - 2));
  }
  // \text{18} and \text{-3} read as numbers; \text{1,250} and \text{18.5} do not.
  if (absl::ConsumePrefix(&out, "\\text{") || absl::ConsumePrefix(&out, "\\mbox{")) {
    absl::string_view digits = out;
    absl::ConsumePrefix(&digits, "-");
    if (!absl::ConsumeSuffix(&out, "}") || digits.size() < 2 ||
        !std::all_of(digits.begin(), digits.end() - 1, IsDigit)) {
      out = "\\text{}";  // not a number
    }
  }
  result.percent = is_percent;
  result.text = std::string(out);
  return result;
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

std::string NormalizeAnswerText(absl::string_view text, bool* percent, UnitRule rule) {
  if (rule == UnitRule::kLenient) return NormalizeLenient(text, percent);
  MathVerifyText normalized = NormalizeMathVerify(text);
  if (percent != nullptr) *percent = normalized.percent;
  return std::move(normalized.text);
}

bool MathVerifyCannotParse(absl::string_view text) {
  return NormalizeMathVerify(text).parse_fails;
}

std::optional<AnswerValue> ParseAnswerValue(absl::string_view text, UnitRule rule) {
  AnswerValue result;
  const std::string s = NormalizeAnswerText(text, &result.percent, rule);
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
  if ((!predicted.percent || predicted.percent_matches_value) && round6(predicted.value) == g) {
    return true;
  }
  return predicted.percent && round6(predicted.value / 100.0) == g;
}

}  // namespace moerl
