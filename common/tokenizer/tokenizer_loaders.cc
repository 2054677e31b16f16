// Tokenizer::FromTokenizerJson and Tokenizer::FromVocabMerges: file formats
// to TokenizerParts. Errors name the file and the JSON key path or line.
#include <cstdint>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"

namespace moerl {
namespace {

using nlohmann::json;

// The split pattern of Qwen2/Qwen3; the only one our scanner implements.
constexpr char kQwenSplitPattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

absl::StatusOr<json> ReadJson(const std::string& path) {
  MOERL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    // Parse again with exceptions only to get the byte offset of the error.
    try {
      const json reparsed = json::parse(text);
      (void)reparsed;
    } catch (const json::parse_error& e) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON at byte ", e.byte, ": ", e.what()));
    }
    return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON"));
  }
  return parsed;
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

// obj[key], or null when obj is not an object or lacks key. Never throws.
const json& Get(const json& obj, const char* key) {
  static const json* const kNull = new json();
  if (!obj.is_object()) return *kNull;
  auto it = obj.find(key);
  return it == obj.end() ? *kNull : *it;
}

absl::Status Unsupported(absl::string_view key, const json& found, absl::string_view expected) {
  return absl::UnimplementedError(absl::StrCat(key, ": expected ", expected, ", found ", found.dump(),
                                               "; only Qwen's byte-level BPE pipeline is supported"));
}

// `obj[key]` if it is absent, null or equal to one of the accepted values.
absl::Status ExpectOneOf(const json& obj, const std::string& path, const char* key,
                         std::initializer_list<json> accepted) {
  const json& value = Get(obj, key);
  if (value.is_null()) return absl::OkStatus();
  for (const json& a : accepted) {
    if (value == a) return absl::OkStatus();
  }
  std::string expected;
  for (const json& a : accepted) absl::StrAppend(&expected, expected.empty() ? "" : " or ", a.dump());
  return Unsupported(absl::StrCat(path, ".", key), value, expected);
}

absl::Status CheckPipeline(const json& root) {
  const json normalizer = Get(root, "normalizer");
  if (Get(normalizer, "type") != "NFC") return Unsupported("normalizer", normalizer, R"({"type": "NFC"})");
  const json pre = Get(root, "pre_tokenizer");
  const json steps = Get(pre, "pretokenizers");
  if (Get(pre, "type") != "Sequence" || !steps.is_array() || steps.size() != 2) {
    return Unsupported("pre_tokenizer", pre, "a Sequence of [Split, ByteLevel]");
  }
  const json& split = steps[0];
  if (Get(split, "type") != "Split") return Unsupported("pre_tokenizer.pretokenizers[0]", split, "Split");
  const json pattern = Get(split, "pattern");
  if (!pattern.is_object() || Get(pattern, "Regex") != json(kQwenSplitPattern)) {
    return Unsupported("pre_tokenizer.pretokenizers[0].pattern", pattern, "Qwen's split regex");
  }
  MOERL_RETURN_IF_ERROR(ExpectOneOf(split, "pre_tokenizer.pretokenizers[0]", "behavior", {"Isolated"}));
  MOERL_RETURN_IF_ERROR(ExpectOneOf(split, "pre_tokenizer.pretokenizers[0]", "invert", {false}));
  const json& byte_level = steps[1];
  if (Get(byte_level, "type") != "ByteLevel") {
    return Unsupported("pre_tokenizer.pretokenizers[1]", byte_level, "ByteLevel");
  }
  MOERL_RETURN_IF_ERROR(ExpectOneOf(byte_level, "pre_tokenizer.pretokenizers[1]", "add_prefix_space", {false}));
  MOERL_RETURN_IF_ERROR(ExpectOneOf(byte_level, "pre_tokenizer.pretokenizers[1]", "use_regex", {false}));
  const json decoder = Get(root, "decoder");
  if (Get(decoder, "type") != "ByteLevel") return Unsupported("decoder", decoder, "ByteLevel");
  const json post = Get(root, "post_processor");
  if (!post.is_null() && Get(post, "type") != "ByteLevel") {
    const json single = Get(post, "single");
    const bool plain = Get(post, "type") == "TemplateProcessing" && single.is_array() &&
                       single.size() == 1 && single[0].is_object() && single[0].contains("Sequence");
    if (!plain) return Unsupported("post_processor", post, "null, ByteLevel or a TemplateProcessing that adds no tokens");
  }
  const json model = Get(root, "model");
  if (!Get(model, "type").is_null() && Get(model, "type") != "BPE") return Unsupported("model.type", Get(model, "type"), "BPE");
  MOERL_RETURN_IF_ERROR(ExpectOneOf(model, "model", "dropout", {}));
  MOERL_RETURN_IF_ERROR(ExpectOneOf(model, "model", "unk_token", {}));
  MOERL_RETURN_IF_ERROR(ExpectOneOf(model, "model", "continuing_subword_prefix", {""}));
  MOERL_RETURN_IF_ERROR(ExpectOneOf(model, "model", "end_of_word_suffix", {""}));
  MOERL_RETURN_IF_ERROR(ExpectOneOf(model, "model", "byte_fallback", {false}));
  MOERL_RETURN_IF_ERROR(ExpectOneOf(model, "model", "ignore_merges", {false}));
  return absl::OkStatus();
}

// Streams a vocab.json object straight into parts->vocab (a DOM of 151k
// entries would double the load time).
class VocabSax : public nlohmann::json_sax<json> {
 public:
  explicit VocabSax(absl::flat_hash_map<std::string, int32_t>* vocab) : vocab_(vocab) {}
  bool null() override { return Unexpected("null"); }
  bool boolean(bool) override { return Unexpected("a boolean"); }
  bool number_integer(number_integer_t v) override { return Id(v); }
  bool number_unsigned(number_unsigned_t v) override { return Id(static_cast<int64_t>(v)); }
  bool number_float(number_float_t, const string_t&) override { return Unexpected("a float"); }
  bool string(string_t&) override { return Unexpected("a string"); }
  bool binary(binary_t&) override { return Unexpected("binary data"); }
  bool start_object(std::size_t) override { return ++depth_ == 1 || Unexpected("an object"); }
  bool end_object() override { return --depth_ == 0; }
  bool start_array(std::size_t) override { return Unexpected("an array"); }
  bool end_array() override { return false; }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    error_ = absl::StrCat("invalid JSON at byte ", position, ": ", e.what());
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  bool Id(int64_t v) {
    if (depth_ != 1 || v < 0 || v > INT32_MAX) return Unexpected(absl::StrCat("id ", v));
    (*vocab_)[key_] = static_cast<int32_t>(v);
    return true;
  }
  bool Unexpected(absl::string_view what) {
    if (error_.empty()) {
      error_ = depth_ == 0 ? absl::StrCat("expected an object of token -> id, found ", what)
                           : absl::StrCat("[\"", key_, "\"]: expected a non-negative integer id, found ", what);
    }
    return false;
  }
  absl::flat_hash_map<std::string, int32_t>* vocab_;
  std::string key_;
  std::string error_;
  int depth_ = 0;
};

absl::Status ParseVocabFile(const std::string& path, TokenizerParts* parts) {
  MOERL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  parts->vocab.reserve(text.size() / 16);
  VocabSax sax(&parts->vocab);
  if (!json::sax_parse(text, &sax)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", sax.error().empty() ? "invalid vocab" : sax.error()));
  }
  return absl::OkStatus();
}

absl::Status ParseVocab(const json& vocab, absl::string_view where, TokenizerParts* parts) {
  if (!vocab.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object of token -> id"));
  parts->vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "[\"", it.key(), "\"]: expected an integer id in [0, 2^31), found ",
          it.value().dump()));
    }
    parts->vocab[it.key()] = it.value().get<int32_t>();
  }
  return absl::OkStatus();
}

// One merge: "a b" (split on the single space) or ["a", "b"].
absl::Status ParseMerge(const json& merge, const std::string& where, TokenizerParts* parts) {
  if (merge.is_string()) {
    const std::string s = merge.get<std::string>();
    std::vector<std::string> sides = absl::StrSplit(s, ' ');
    if (sides.size() != 2 || sides[0].empty() || sides[1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": expected \"left right\", found \"", s, "\""));
    }
    parts->merges.emplace_back(sides[0], sides[1]);
    return absl::OkStatus();
  }
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    parts->merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": expected \"left right\" or [\"left\", \"right\"], found ", merge.dump()));
}

absl::Status ParseAddedToken(const json& token, const std::string& where, int32_t id, TokenizerParts* parts) {
  if (!Get(token, "content").is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object with a string \"content\""));
  }
  for (const char* flag : {"single_word", "lstrip", "rstrip", "normalized"}) {
    const json& value = Get(token, flag);
    if (!value.is_null() && value != false) {
      return absl::UnimplementedError(absl::StrCat(where, ".", flag, ": only false is supported (Qwen uses false)"));
    }
  }
  parts->added_tokens.push_back({id, Get(token, "content").get<std::string>(), Get(token, "special") == true});
  return absl::OkStatus();
}

absl::Status ParseTokenizerConfig(const json& config, const std::string& path, TokenizerParts* parts) {
  const json& decoder = Get(config, "added_tokens_decoder");
  if (!decoder.is_null() && !decoder.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": added_tokens_decoder is not an object"));
  for (auto it = decoder.begin(); it != decoder.end(); ++it) {
    const std::string where = absl::StrCat(path, ": added_tokens_decoder[\"", it.key(), "\"]");
    int32_t id;
    if (!absl::SimpleAtoi(it.key(), &id)) return absl::InvalidArgumentError(absl::StrCat(where, ": key is not an id"));
    MOERL_RETURN_IF_ERROR(ParseAddedToken(it.value(), where, id, parts));
  }
  const json eos = Get(config, "eos_token");
  if (eos.is_string()) {
    parts->eos_token = eos.get<std::string>();
  } else if (eos.is_object() && Get(eos, "content").is_string()) {
    parts->eos_token = Get(eos, "content").get<std::string>();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Tokenizer> Tokenizer::FromTokenizerJson(const std::string& path) {
  MOERL_ASSIGN_OR_RETURN(json root, ReadJson(path));
  if (!root.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": expected a JSON object"));
  MOERL_RETURN_IF_ERROR(Annotate(CheckPipeline(root), path));
  TokenizerParts parts;
  const json& model = Get(root, "model");
  MOERL_RETURN_IF_ERROR(ParseVocab(Get(model, "vocab"), path + ": model.vocab", &parts));
  const json& merges = Get(model, "merges");
  if (!merges.is_array()) return absl::InvalidArgumentError(absl::StrCat(path, ": model.merges is not an array"));
  parts.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    MOERL_RETURN_IF_ERROR(ParseMerge(merges[i], absl::StrCat(path, ": model.merges[", i, "]"), &parts));
  }
  const json& added = Get(root, "added_tokens");
  if (!added.is_null() && !added.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": added_tokens is not an array"));
  }
  for (size_t i = 0; added.is_array() && i < added.size(); ++i) {
    const std::string where = absl::StrCat(path, ": added_tokens[", i, "]");
    const json& id = Get(added[i], "id");
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected an object with an integer \"id\" in [0, 2^31)"));
    }
    MOERL_RETURN_IF_ERROR(ParseAddedToken(added[i], where, Get(added[i], "id").get<int32_t>(), &parts));
  }
  const std::string config_path = Dirname(path) + "/tokenizer_config.json";
  if (FileExists(config_path)) {
    MOERL_ASSIGN_OR_RETURN(json config, ReadJson(config_path));
    const json eos = Get(config, "eos_token");
    if (eos.is_string()) parts.eos_token = eos.get<std::string>();
  }
  auto tokenizer = FromParts(std::move(parts));
  if (!tokenizer.ok()) return Annotate(tokenizer.status(), path);
  return tokenizer;
}

absl::StatusOr<Tokenizer> Tokenizer::FromVocabMerges(const std::string& dir) {
  TokenizerParts parts;
  const std::string vocab_path = dir + "/vocab.json";
  MOERL_RETURN_IF_ERROR(ParseVocabFile(vocab_path, &parts));

  const std::string merges_path = dir + "/merges.txt";
  MOERL_ASSIGN_OR_RETURN(std::string merges_text, ReadFileToString(merges_path));
  size_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(merges_text, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && absl::StartsWith(line, "#version"))) continue;
    const size_t space = line.find(' ');
    if (space == absl::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(merges_path, ":", line_no, ": expected \"left right\", found \"", line, "\""));
    }
    parts.merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
  }

  const std::string config_path = dir + "/tokenizer_config.json";
  MOERL_ASSIGN_OR_RETURN(json config, ReadJson(config_path));
  MOERL_RETURN_IF_ERROR(ParseTokenizerConfig(config, config_path, &parts));
  auto tokenizer = FromParts(std::move(parts));
  if (!tokenizer.ok()) return Annotate(tokenizer.status(), dir);
  return tokenizer;
}

}  // namespace moerl
