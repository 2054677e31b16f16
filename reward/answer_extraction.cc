#include "reward/answer_extraction.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "reward/arithmetic.h"

namespace moerl {
namespace {

constexpr size_t kAnchorNumberReach = 50;   // a number must start this close
constexpr size_t kAnchorEqualsReach = 100;  // ... or follow an '=' this close

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

// One past the '}' closing the '{' at `open`, or npos if unterminated.
size_t MatchBrace(absl::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      ++i;
      continue;
    }
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i + 1;
  }
  return absl::string_view::npos;
}

// End of the number whose first digit (or '.') is at `i`.
size_t ConsumeNumber(absl::string_view s, size_t i) {
  while (i < s.size() && IsDigit(s[i])) ++i;
  // Thousands groups: ",ddd" not followed by another digit.
  while (i + 3 < s.size() && s[i] == ',' && IsDigit(s[i + 1]) && IsDigit(s[i + 2]) &&
         IsDigit(s[i + 3]) && !(i + 4 < s.size() && IsDigit(s[i + 4]))) {
    i += 4;
  }
  if (i + 1 < s.size() && s[i] == '.' && IsDigit(s[i + 1])) {
    i += 1;
    while (i < s.size() && IsDigit(s[i])) ++i;
  }
  return i;
}

// "\frac{a}{b}" / "\dfrac{a}{b}" / "\tfrac{a}{b}" starting at `i`: its end, or npos.
size_t ConsumeLatexFraction(absl::string_view s, size_t i) {
  size_t open = absl::string_view::npos;
  for (absl::string_view name : {"\\frac{", "\\dfrac{", "\\tfrac{"}) {
    if (s.substr(i, name.size()) == name) open = i + name.size() - 1;
  }
  if (open == absl::string_view::npos) return open;
  const size_t close1 = MatchBrace(s, open);
  if (close1 == absl::string_view::npos || close1 >= s.size() || s[close1] != '{') {
    return absl::string_view::npos;
  }
  const size_t close2 = MatchBrace(s, close1);
  if (close2 == absl::string_view::npos) return close2;
  const absl::string_view body = s.substr(open, close2 - open);
  if (std::none_of(body.begin(), body.end(), IsDigit)) return absl::string_view::npos;
  return close2;
}

// The number after `pos` and after the last '=' within reach on that line,
// else the first number starting within reach. `pos` is just past an anchor.
std::optional<TokenSpan> NumberAfterAnchor(absl::string_view text, size_t pos) {
  size_t line_end = text.find('\n', pos);
  if (line_end == absl::string_view::npos) line_end = text.size();
  // "The answer is:\n18": a line that ends right after the anchor continues.
  if (absl::StripAsciiWhitespace(text.substr(pos, line_end - pos)).size() <= 2 &&
      line_end < text.size()) {
    size_t next_end = text.find('\n', line_end + 1);
    line_end = next_end == absl::string_view::npos ? text.size() : next_end;
  }
  const size_t equals_limit = std::min(line_end, pos + kAnchorEqualsReach);
  const size_t equals = text.substr(pos, equals_limit - pos).rfind('=');
  if (equals != absl::string_view::npos) {
    std::optional<TokenSpan> after = NextNumberToken(text, pos + equals + 1, line_end);
    if (after) return after;
  }
  return NextNumberToken(text, pos, std::min(line_end, pos + kAnchorNumberReach));
}

std::optional<TokenSpan> FindAnchoredNumber(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  std::vector<size_t> with_colon, bare;
  for (size_t at = lower.find("answer"); at != std::string::npos;
       at = lower.find("answer", at + 6)) {
    size_t after = at + 6;
    if (lower.compare(after, 2, "**") == 0) after += 2;
    (after < lower.size() && lower[after] == ':' ? with_colon : bare).push_back(at);
  }
  for (const std::vector<size_t>* anchors : {&with_colon, &bare}) {
    for (auto it = anchors->rbegin(); it != anchors->rend(); ++it) {
      std::optional<TokenSpan> span = NumberAfterAnchor(text, *it + 6);
      if (span) return span;
    }
  }
  return std::nullopt;
}

}  // namespace

const char* AnswerSourceName(AnswerSource source) {
  switch (source) {
    case AnswerSource::kNone: return "none";
    case AnswerSource::kBoxed: return "boxed";
    case AnswerSource::kAnchor: return "anchor";
    case AnswerSource::kHashes: return "hashes";
    case AnswerSource::kLastNumber: return "last_number";
    case AnswerSource::kLastExpression: return "last_expression";
  }
  return "unknown";
}

std::vector<std::string> FindBoxedContents(absl::string_view text) {
  std::vector<std::string> boxes;
  for (absl::string_view command : {"\\boxed", "\\fbox"}) {
    for (size_t at = text.find(command); at != absl::string_view::npos;
         at = text.find(command, at + 1)) {
      size_t open = at + command.size();
      while (open < text.size() && text[open] == ' ') ++open;
      if (open >= text.size() || text[open] != '{') continue;
      const size_t close = MatchBrace(text, open);
      if (close == absl::string_view::npos) continue;
      absl::string_view inside = absl::StripAsciiWhitespace(text.substr(open + 1, close - open - 2));
      if (!inside.empty()) boxes.emplace_back(inside);
    }
  }
  return boxes;
}

std::optional<TokenSpan> NextNumberToken(absl::string_view text, size_t from, size_t limit) {
  limit = std::min(limit, text.size());
  size_t i = from;
  while (i < limit) {
    const size_t fraction_end = text[i] == '\\' ? ConsumeLatexFraction(text, i) : text.npos;
    if (fraction_end != text.npos) {
      size_t begin = i;
      if (begin > 0 && text[begin - 1] == '-') --begin;
      return TokenSpan{begin, fraction_end};
    }
    const bool starts_number =
        IsDigit(text[i]) || (text[i] == '.' && i + 1 < text.size() && IsDigit(text[i + 1]));
    if (!starts_number) {
      ++i;
      continue;
    }
    // Glued to a word ("x2", "v1.5"), the minutes of a time ("10:30"), or the start of an unterminated box
    // (complete boxes were taken before any number is looked for).
    const bool glued = i > 0 && (IsAlnum(text[i - 1]) || text[i - 1] == '_' ||
                                 ((text[i - 1] == '.' || text[i - 1] == ':') && i > 1 &&
                                  IsDigit(text[i - 2])) ||
                                 (text[i - 1] == '{' && i >= 7 &&
                                  text.substr(i - 7, 6) == "\\boxed"));
    size_t end = ConsumeNumber(text, i);
    if (glued) {
      i = std::max(end, i + 1);
      continue;
    }
    size_t begin = i;
    // A leading minus, unless it is a binary minus ("5-3").
    if (begin > 0 && text[begin - 1] == '-' &&
        (begin == 1 || !(IsAlnum(text[begin - 2]) || text[begin - 2] == ')'))) {
      --begin;
    }
    // "3/4"
    if (end + 1 < text.size() && text[end] == '/' && IsDigit(text[end + 1])) {
      end = ConsumeNumber(text, end + 1);
    }
    if (end < text.size() && text[end] == '%') {
      ++end;
    } else if (text.substr(end, 2) == "\\%") {
      end += 2;
    }
    return TokenSpan{begin, end};
  }
  return std::nullopt;
}

namespace {

// Bytes of math-verify's expression characters: digits, '.', whitespace,
// + - * / ^ ( ) and the UTF-8 '×' / '÷' (0xC3 0x97 / 0xC3 0xB7).
size_t ExpressionCharSize(absl::string_view s, size_t i) {
  const char c = s[i];
  if (IsDigit(c) || c == '.' || c == '+' || c == '-' || c == '*' || c == '/' || c == '^' ||
      c == '(' || c == ')' || absl::ascii_isspace(static_cast<unsigned char>(c))) {
    return 1;
  }
  if (static_cast<unsigned char>(c) == 0xC3 && i + 1 < s.size() &&
      (static_cast<unsigned char>(s[i + 1]) == 0x97 ||
       static_cast<unsigned char>(s[i + 1]) == 0xB7)) {
    return 2;
  }
  return 0;
}

bool IsOperatorAt(absl::string_view s, size_t i) {
  const char c = s[i];
  return c == '+' || c == '-' || c == '*' || c == '/' || c == '^' || c == '(' || c == ')' ||
         ExpressionCharSize(s, i) == 2;
}

// math-verify's plain-expression regex at one start:
//   -?\(?-?\d [chars]* [ops] [chars]+ \)?  then . , : whitespace ) $ or the end,
// with the longest end. Returns the end, or npos.
size_t ExpressionEndFrom(absl::string_view s, size_t start, size_t run_end) {
  size_t i = start;
  if (i < run_end && s[i] == '-') ++i;
  if (i < run_end && s[i] == '(') ++i;
  if (i < run_end && s[i] == '-') ++i;
  if (i >= run_end || !IsDigit(s[i])) return absl::string_view::npos;
  const size_t first_digit = i;
  auto suffix_ok = [&](size_t e) {
    if (e == s.size()) return true;
    const char c = s[e];
    return c == '.' || c == ',' || c == ':' || c == ')' || c == '$' ||
           absl::ascii_isspace(static_cast<unsigned char>(c));
  };
  // Longest end first: an operator after the first digit with a character
  // after it, then a valid suffix.
  for (size_t e = run_end; e > first_digit + 2; --e) {
    if (!suffix_ok(e)) continue;
    for (size_t k = first_digit + 1; k + 1 < e; ++k) {
      if (IsOperatorAt(s, k)) return e;
    }
    return absl::string_view::npos;  // shorter ends hold no more operators
  }
  return absl::string_view::npos;
}

// The last plain expression math-verify finds in the run of expression
// characters holding `last` (the last number), if it reaches that number's
// end; its matches are non-overlapping, leftmost first, and each needs the
// text start, whitespace or '=' before it.
std::optional<TokenSpan> TrailingExpression(absl::string_view s, TokenSpan last) {
  for (size_t i = last.begin; i < last.end; ++i) {
    if (ExpressionCharSize(s, i) == 0) return std::nullopt;  // "45%", "\frac{..}"
  }
  size_t run_begin = last.begin;
  while (run_begin > 0) {
    size_t size = ExpressionCharSize(s, run_begin - 1);
    if (size == 0 && run_begin >= 2 && ExpressionCharSize(s, run_begin - 2) == 2) size = 2;
    if (size == 0) break;
    run_begin -= size;
  }
  size_t run_end = last.end;
  while (run_end < s.size()) {
    const size_t size = ExpressionCharSize(s, run_end);
    if (size == 0) break;
    run_end += size;
  }
  std::optional<TokenSpan> found;
  size_t from = run_begin;
  while (from < run_end) {
    size_t match_end = absl::string_view::npos;
    size_t start = from;
    for (; start < run_end; ++start) {
      const bool prefix_ok =
          start == 0 || absl::ascii_isspace(static_cast<unsigned char>(s[start - 1])) ||
          s[start - 1] == '=';
      if (!prefix_ok) continue;
      match_end = ExpressionEndFrom(s, start, run_end);
      if (match_end != absl::string_view::npos) break;
    }
    if (match_end == absl::string_view::npos) break;
    found = TokenSpan{start, match_end};
    from = match_end + 1;  // the suffix character is consumed
  }
  if (!found || found->end < last.end) return std::nullopt;
  return found;
}

// Steps 2 to 4 of ExtractAnswer.
ExtractedAnswer ExtractUnboxed(absl::string_view completion) {
  ExtractedAnswer answer;
  auto found = [&](AnswerSource source, TokenSpan span) {
    answer.source = source;
    answer.texts.emplace_back(completion.substr(span.begin, span.end - span.begin));
    return answer;
  };
  if (std::optional<TokenSpan> span = FindAnchoredNumber(completion)) {
    return found(AnswerSource::kAnchor, *span);
  }
  const size_t hashes = completion.rfind("####");
  if (hashes != absl::string_view::npos) {
    if (std::optional<TokenSpan> span = NextNumberToken(completion, hashes + 4)) {
      return found(AnswerSource::kHashes, *span);
    }
  }
  std::optional<TokenSpan> last;
  for (std::optional<TokenSpan> span = NextNumberToken(completion, 0); span;
       span = NextNumberToken(completion, span->end)) {
    last = span;
  }
  if (last) {
    // A text that ends in arithmetic ("x = 270 - 95 - 80") is read as
    // math-verify reads it: the expression, when it evaluates.
    std::optional<TokenSpan> expression = TrailingExpression(completion, *last);
    if (expression &&
        EvaluateArithmetic(completion.substr(expression->begin,
                                             expression->end - expression->begin))) {
      return found(AnswerSource::kLastExpression, *expression);
    }
    return found(AnswerSource::kLastNumber, *last);
  }
  return answer;
}

}  // namespace

ExtractedAnswer ExtractAnswer(absl::string_view completion) {
  ExtractedAnswer answer;
  answer.texts = FindBoxedContents(completion);
  if (!answer.texts.empty()) {
    answer.source = AnswerSource::kBoxed;
    return answer;
  }
  return ExtractUnboxed(completion);
}

ExtractedAnswer ExtractAnswerOutsideBoxes(absl::string_view completion) {
  std::string blanked(completion);
  for (absl::string_view command : {"\\boxed", "\\fbox"}) {
    for (size_t at = blanked.find(command.data(), 0, command.size()); at != std::string::npos;
         at = blanked.find(command.data(), at + 1, command.size())) {
      size_t open = at + command.size();
      while (open < blanked.size() && blanked[open] == ' ') ++open;
      if (open >= blanked.size() || blanked[open] != '{') continue;
      const size_t close = MatchBrace(blanked, open);
      if (close == std::string::npos) continue;
      std::fill(blanked.begin() + static_cast<std::ptrdiff_t>(at),
                blanked.begin() + static_cast<std::ptrdiff_t>(close), ' ');
    }
  }
  ExtractedAnswer answer = ExtractUnboxed(blanked);
  return answer;
}

}  // namespace moerl
