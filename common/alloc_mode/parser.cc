// Recursive-descent parser for the allocation_mode grammar (syntax only; the
// GPU arithmetic and naming rules are in validate.cc). Whitespace may sit
// between any two tokens; a dimension (`d4`) is one token.
#include <cctype>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/alloc_mode/syntax.h"
#include "common/config/edit_distance.h"
#include "common/status.h"

namespace moerl {
namespace alloc_mode_internal {

absl::Status CaretError(absl::string_view text, size_t pos, size_t len, absl::string_view what,
                        absl::string_view fix) {
  std::string shown(text);
  for (char& c : shown) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  if (pos > text.size()) pos = text.size();
  if (len == 0) len = 1;
  std::string marker(pos, ' ');
  marker += '^';
  if (len > 1) marker.append(len - 1, '~');
  return absl::InvalidArgumentError(absl::StrCat("invalid allocation_mode: ", what, "\n  ", shown,
                                                 "\n  ", marker, "\n  fix: ", fix));
}

const DimToken* DimList::Find(char letter) const {
  const DimToken* found = nullptr;
  for (const DimToken& t : tokens) {
    if (t.letter == letter) found = &t;
  }
  return found;
}

namespace {

const std::vector<std::string>& BackendNames() {
  static const std::vector<std::string>* names =
      new std::vector<std::string>{"sglang", "vllm", "fsdp", "megatron", "archon"};
  return *names;
}

std::optional<Backend> BackendFromWord(absl::string_view word) {
  if (word == "sglang") return Backend::kSglang;
  if (word == "vllm") return Backend::kVllm;
  if (word == "fsdp") return Backend::kFsdp;
  if (word == "megatron") return Backend::kMegatron;
  if (word == "archon") return Backend::kArchon;
  return std::nullopt;
}

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Where a dimension list sits decides which letters it may hold.
enum class DimContext { kInference, kTraining, kAttention, kFfn };

absl::string_view AllowedLetters(DimContext context) {
  switch (context) {
    case DimContext::kInference:
      return "dtp";
    case DimContext::kTraining:
      return "dtpce";
    case DimContext::kAttention:
      return "dtpc";
    case DimContext::kFfn:
      return "dtpe";
  }
  return "";
}

constexpr char kHybridExample[] = "'megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)'";

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<SyntaxTree> Run() {
    if (AtEnd()) {
      return Error(0, 0, "the string is empty",
                   "write an allocation such as 'sglang:d4+fsdp:d4' (see docs/config.md)");
    }
    while (true) {
      MOERL_RETURN_IF_ERROR(ParseComponent());
      if (AtEnd()) break;
      const char c = Peek();
      if (c != '+') {
        if (c == ')') {
          return Error(pos_, 1, "')' without a matching '('",
                       absl::StrCat("write the hybrid form with both parentheses, e.g. ",
                                    kHybridExample));
        }
        return Error(pos_, 1, absl::StrCat("unexpected '", std::string(1, c), "' after an allocation"),
                     "separate allocations with '+' (own GPUs) or '|' (shared GPUs)");
      }
      const size_t plus = pos_++;
      tree_.plus_positions.push_back(plus);
      if (AtEnd()) {
        return Error(plus, 1, "'+' must be followed by another allocation",
                     "remove the trailing '+' or add an allocation after it, e.g. '...+fsdp:d4'");
      }
      const absl::string_view word = PeekWord();
      if (word == "eval" || word == "cpu") {
        const size_t word_end = pos_ + word.size();
        const std::string without =
            absl::StrCat(text_.substr(0, plus), text_.substr(word_end));
        return Error(plus, word_end - plus,
                     absl::StrCat("'+", word, "' (AReaL v0.4's evaluation-only mode) is not supported"),
                     absl::StrCat("write only the inference part, '", without,
                                  "', and run the evaluation as its own job"));
      }
    }
    return std::move(tree_);
  }

 private:
  absl::Status Error(size_t pos, size_t len, absl::string_view what, absl::string_view fix) const {
    return CaretError(text_, pos, len, what, fix);
  }

  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool AtEnd() {
    SkipSpace();
    return pos_ >= text_.size();
  }
  char Peek() {
    SkipSpace();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  // The identifier starting at the next token, not consumed ("" if none).
  absl::string_view PeekWord() {
    SkipSpace();
    size_t end = pos_;
    if (end < text_.size() && IsNameStart(text_[end])) {
      while (end < text_.size() && IsNameChar(text_[end])) ++end;
    }
    return text_.substr(pos_, end - pos_);
  }

  absl::Status DotError(size_t dot) const {
    return Error(dot, 1, "'.' between backend and dimensions is the pre-v0.4.1 form",
                 absl::StrCat("use ':' instead: '", absl::StrReplaceAll(text_, {{".", ":"}}), "'"));
  }

  // Consumes `c` or explains what was expected after `after`.
  absl::Status Expect(char c, absl::string_view after, absl::string_view example) {
    const char got = Peek();
    if (got == c) {
      ++pos_;
      return absl::OkStatus();
    }
    if (c == ':' && got == '.') return DotError(pos_);
    return Error(pos_, 1,
                 absl::StrCat("expected '", std::string(1, c), "' after ", after,
                              got == '\0' ? ", found the end of the string"
                                          : absl::StrCat(", found '", std::string(1, got), "'")),
                 absl::StrCat("write e.g. ", example));
  }

  absl::Status ParseComponent() {
    AllocationSyntax first;
    MOERL_RETURN_IF_ERROR(ParseSingle(&first));
    tree_.allocations.push_back(std::move(first));
    while (Peek() == '|') {
      const size_t bar = pos_++;
      if (AtEnd()) {
        return Error(bar, 1, "'|' must be followed by another allocation",
                     "add a named allocation that shares these GPUs, e.g. '...|fsdp[ref]:d4'");
      }
      AllocationSyntax member;
      MOERL_RETURN_IF_ERROR(ParseSingle(&member));
      member.colocated = true;
      tree_.allocations.push_back(std::move(member));
    }
    return absl::OkStatus();
  }

  absl::Status ParseSingle(AllocationSyntax* out) {
    SkipSpace();
    out->pos = pos_;
    const char c = Peek();
    if (c == '(') {
      MOERL_RETURN_IF_ERROR(ParseHybrid(out));
    } else if (c == '[') {
      MOERL_RETURN_IF_ERROR(ParseName(out));
      MOERL_RETURN_IF_ERROR(Expect(':', absl::StrCat("'[", out->name, "]'"),
                                            "'fsdp[actor]:d4'"));
      MOERL_RETURN_IF_ERROR(ParseDims(DimContext::kTraining, &out->dims));
    } else if (IsNameStart(c)) {
      MOERL_RETURN_IF_ERROR(ParseWordStart(out));
    } else {
      return Error(pos_, 1,
                   c == '\0' ? std::string("expected an allocation, found the end of the string")
                             : absl::StrCat("expected an allocation, found '", std::string(1, c), "'"),
                   "write an allocation such as 'sglang:d4' or 'fsdp[actor]:d4'");
    }
    out->len = last_end_ - out->pos;
    return absl::OkStatus();
  }

  // An allocation that starts with a word: a backend, `attn`, or bare dims.
  absl::Status ParseWordStart(AllocationSyntax* out) {
    const size_t start = pos_;
    const absl::string_view word = PeekWord();
    if (std::optional<Backend> backend = BackendFromWord(word)) {
      out->backend = backend;
      pos_ += word.size();
      last_end_ = pos_;
      if (Peek() == '[') MOERL_RETURN_IF_ERROR(ParseName(out));
      MOERL_RETURN_IF_ERROR(
          Expect(':', absl::StrCat("'", word, "'"), absl::StrCat("'", word, ":d4'")));
      const bool hybrid = Peek() == '(' || PeekWord() == "attn";
      if (IsInferenceBackend(*backend)) {
        if (hybrid) {
          return Error(pos_, 1,
                       absl::StrCat("the attn|ffn hybrid form is only for training backends, not ",
                                    word),
                       absl::StrCat("give ", word, " plain d/t/p dims, e.g. '", word, ":d4t2'"));
        }
        return ParseDims(DimContext::kInference, &out->dims);
      }
      if (hybrid) return ParseHybrid(out);
      return ParseDims(DimContext::kTraining, &out->dims);
    }
    if (word == "attn") return ParseHybrid(out);
    const char first = static_cast<char>(std::tolower(static_cast<unsigned char>(word[0])));
    if (word.size() > 1 && IsDigit(word[1]) &&
        absl::string_view("dtpcem").find(first) != absl::string_view::npos) {
      return ParseDims(DimContext::kTraining, &out->dims);
    }
    const std::string lower = absl::AsciiStrToLower(word);
    if (BackendFromWord(lower)) {
      return Error(start, word.size(), absl::StrCat("backend names are lower-case, found '", word, "'"),
                   absl::StrCat("write '", lower, "'"));
    }
    if (word == "eval" || word == "cpu") {
      return Error(start, word.size(), absl::StrCat("'", word, "' is not an allocation"),
                   "the evaluation-only mode of AReaL v0.4 was removed; give only the inference "
                   "allocation, e.g. 'sglang:d4'");
    }
    if (word == "manual" || word == "heuristic") {
      return Error(start, word.size(), absl::StrCat("'", word, "' is realhf's old allocation mode"),
                   "write the allocation explicitly, e.g. 'sglang:d4+fsdp:d4'");
    }
    const std::string closest = ClosestMatch(word, BackendNames());
    return Error(start, word.size(), absl::StrCat("unknown backend '", word, "'"),
                 closest.empty()
                     ? std::string("backends are sglang, vllm (inference) and fsdp, megatron, "
                                   "archon (training)")
                     : absl::StrCat("did you mean '", closest, "'? backends are sglang, vllm, fsdp, "
                                    "megatron, archon"));
  }

  absl::Status ParseName(AllocationSyntax* out) {
    const size_t open = pos_++;  // '['
    SkipSpace();
    const size_t start = pos_;
    if (pos_ >= text_.size() || !IsNameStart(text_[pos_])) {
      return Error(pos_, 1, "expected a name ([A-Za-z_][A-Za-z0-9_]*) after '['",
                   "write e.g. 'fsdp[actor]:d4'");
    }
    while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
    out->name = std::string(text_.substr(start, pos_ - start));
    out->name_pos = start;
    if (Peek() != ']') {
      return Error(pos_, 1, absl::StrCat("expected ']' to close the '[' at byte ", open),
                   "names are letters, digits and '_', e.g. 'fsdp[actor_1]:d4'");
    }
    ++pos_;
    last_end_ = pos_;
    return absl::OkStatus();
  }

  absl::Status ExpectWord(absl::string_view word, absl::string_view what) {
    if (PeekWord() != word) {
      return Error(pos_, std::max<size_t>(1, PeekWord().size()),
                   absl::StrCat("expected '", word, ":' ", what),
                   absl::StrCat("write e.g. ", kHybridExample));
    }
    pos_ += word.size();
    return Expect(':', absl::StrCat("'", word, "'"), kHybridExample);
  }

  absl::Status ParseHybrid(AllocationSyntax* out) {
    out->hybrid = true;
    std::optional<size_t> open;
    if (Peek() == '(') open = pos_++;
    MOERL_RETURN_IF_ERROR(ExpectWord("attn", "to start the attention dims"));
    MOERL_RETURN_IF_ERROR(ParseDims(DimContext::kAttention, &out->attn));
    if (Peek() != '|') {
      return Error(pos_, 1, "expected '|ffn:<dims>' after the attention dims",
                   absl::StrCat("write e.g. ", kHybridExample));
    }
    ++pos_;
    MOERL_RETURN_IF_ERROR(ExpectWord("ffn", "for the expert dims after '|'"));
    MOERL_RETURN_IF_ERROR(ParseDims(DimContext::kFfn, &out->ffn));
    if (open) {
      if (Peek() != ')') {
        return Error(pos_, 1, absl::StrCat("expected ')' to close the '(' at byte ", *open),
                     absl::StrCat("write e.g. ", kHybridExample));
      }
      ++pos_;
      last_end_ = pos_;
    }
    return absl::OkStatus();
  }

  absl::Status LetterError(size_t at, char c, DimContext context) const {
    const char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (c != lower && absl::string_view("dtpcem").find(lower) != absl::string_view::npos) {
      return Error(at, 1, absl::StrCat("dimension letters are lower-case, found '", std::string(1, c), "'"),
                   absl::StrCat("write '", std::string(1, lower), "'"));
    }
    if (c == 'm') {
      std::string fixed(text_);
      fixed[at] = 't';
      return Error(at, 1, "'m' (model parallel) is realhf's letter; tensor parallelism is 't'",
                   absl::StrCat("write '", fixed, "'"));
    }
    if (absl::string_view("dtpce").find(c) == absl::string_view::npos) {
      return Error(at, 1, absl::StrCat("unknown dimension letter '", std::string(1, c), "'"),
                   "dimensions are d (data), t (tensor), p (pipeline), c (context), e (expert), "
                   "each followed by a size, e.g. 'd2t4'");
    }
    switch (context) {
      case DimContext::kInference:
        return Error(at, 1,
                     absl::StrCat("inference backends take only d, t and p, found '",
                                  std::string(1, c), "'"),
                     "the allocation only counts server GPUs; set SGLang's own attention-DP/expert "
                     "parallelism with sglang.dp_size, sglang.ep_size and sglang.enable_dp_attention");
      case DimContext::kAttention:
        return Error(at, 1, "'e' is not an attention dimension",
                     "put expert parallelism in the ffn part, e.g. 'megatron:(attn:d2|ffn:e2)'");
      case DimContext::kFfn:
        return Error(at, 1, "'c' is not an ffn dimension",
                     "put context parallelism in the attn part, e.g. 'megatron:(attn:c2|ffn:e2)'");
      case DimContext::kTraining:
        break;
    }
    return Error(at, 1, "unexpected dimension letter", "see docs/config.md");
  }

  absl::Status ParseDims(DimContext context, DimList* out) {
    SkipSpace();
    out->pos = pos_;
    const absl::string_view allowed = AllowedLetters(context);
    while (true) {
      const size_t before_space = pos_;
      SkipSpace();
      if (pos_ >= text_.size() || !std::isalpha(static_cast<unsigned char>(text_[pos_]))) break;
      // After a space, a word that is not shaped like `d4` starts something
      // else (`fsdp:d4 fsdp:d4`): leave it to the caller's "unexpected" error.
      const absl::string_view word = PeekWord();
      if (!out->tokens.empty() && pos_ != before_space && word.size() > 1 && !IsDigit(word[1])) {
        break;
      }
      const size_t start = pos_;
      const char letter = text_[pos_];
      if (allowed.find(letter) == absl::string_view::npos) {
        return LetterError(start, letter, context);
      }
      ++pos_;
      const size_t digits = pos_;
      while (pos_ < text_.size() && IsDigit(text_[pos_]) && pos_ - digits < 9) ++pos_;
      const std::string example = absl::StrCat("'", std::string(1, letter), "4'");
      if (pos_ == digits) {
        return Error(start, 1, absl::StrCat("expected a size after '", std::string(1, letter), "'"),
                     absl::StrCat("write e.g. ", example));
      }
      const absl::string_view number = text_.substr(digits, pos_ - digits);
      if (number[0] == '0') {
        return Error(start, pos_ - start,
                     number.size() == 1 ? std::string("sizes start at 1, found 0")
                                        : absl::StrCat("sizes have no leading zero, found '", number, "'"),
                     absl::StrCat("write e.g. ", example));
      }
      long long value = 0;
      for (char d : number) value = value * 10 + (d - '0');
      if (value > kMaxWorldSize || (pos_ < text_.size() && IsDigit(text_[pos_]))) {
        while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
        return Error(start, pos_ - start,
                     absl::StrCat("size too large (the limit is ", kMaxWorldSize, ")"),
                     "use a realistic GPU count");
      }
      out->tokens.push_back(DimToken{letter, static_cast<int>(value), start, pos_ - start});
      last_end_ = pos_;
    }
    if (out->tokens.empty()) {
      return Error(pos_, 1, "expected dimensions such as 'd4' or 'd2t2'",
                   "give at least one size: d (data), t (tensor), p (pipeline), c (context), "
                   "e (expert), e.g. 'fsdp:d4'");
    }
    out->len = last_end_ - out->pos;
    return absl::OkStatus();
  }

  absl::string_view text_;
  size_t pos_ = 0;
  size_t last_end_ = 0;  // one past the last consumed token
  SyntaxTree tree_;
};

}  // namespace

absl::StatusOr<SyntaxTree> ParseSyntax(absl::string_view text) { return Parser(text).Run(); }

}  // namespace alloc_mode_internal
}  // namespace moerl
