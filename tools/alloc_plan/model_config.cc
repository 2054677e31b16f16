#include "tools/alloc_plan/model_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace moerl {

bool ModelShape::IsMoeLayer(int64_t layer) const {
  if (num_experts <= 0) return false;
  for (int64_t l : mlp_only_layers) {
    if (l == layer) return false;
  }
  return (layer + 1) % decoder_sparse_step == 0;
}

int64_t ModelShape::NumMoeLayers() const {
  int64_t n = 0;
  for (int64_t l = 0; l < num_layers; ++l) n += IsMoeLayer(l) ? 1 : 0;
  return n;
}

namespace {

using Json = nlohmann::json;

constexpr int64_t kMaxField = int64_t{1} << 40;

// A positive integer field; `required` false gives `fallback` when absent.
absl::StatusOr<int64_t> IntField(const Json& j, const char* key, absl::string_view source,
                                 bool required, int64_t fallback = 0, int64_t min = 1) {
  if (!j.contains(key) || j[key].is_null()) {
    if (!required) return fallback;
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": missing field '", key, "' (is this a Hugging Face config.json of a Qwen3 model?)"));
  }
  const Json& v = j[key];
  if (!v.is_number_integer() || v.get<int64_t>() < min || v.get<int64_t>() > kMaxField) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": field '", key,
                                                   "' must be an integer >= ", min, ", found ",
                                                   v.dump()));
  }
  return v.get<int64_t>();
}

}  // namespace

absl::StatusOr<ModelShape> ParseModelShape(absl::string_view json_text, absl::string_view source) {
  Json j;
  try {
    j = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not valid JSON at byte ", e.byte, ": ", e.what()));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": expected a JSON object, found ",
                                                   j.type_name()));
  }
  ModelShape s;
  if (j.contains("model_type") && j["model_type"].is_string()) s.model_type = j["model_type"];
  MOERL_ASSIGN_OR_RETURN(s.hidden_size, IntField(j, "hidden_size", source, true));
  MOERL_ASSIGN_OR_RETURN(s.num_layers, IntField(j, "num_hidden_layers", source, true));
  MOERL_ASSIGN_OR_RETURN(s.num_heads, IntField(j, "num_attention_heads", source, true));
  MOERL_ASSIGN_OR_RETURN(s.num_kv_heads,
                         IntField(j, "num_key_value_heads", source, false, s.num_heads));
  MOERL_ASSIGN_OR_RETURN(s.head_dim, IntField(j, "head_dim", source, false,
                                              s.hidden_size / s.num_heads));
  MOERL_ASSIGN_OR_RETURN(s.vocab_size, IntField(j, "vocab_size", source, true));
  MOERL_ASSIGN_OR_RETURN(s.intermediate_size, IntField(j, "intermediate_size", source, true));
  // transformers v5 configs may spell it num_local_experts (the trainer's
  // ModelConfig accepts both).
  const char* experts_key = j.contains("num_experts") || !j.contains("num_local_experts")
                                ? "num_experts"
                                : "num_local_experts";
  MOERL_ASSIGN_OR_RETURN(s.num_experts, IntField(j, experts_key, source, false, 0, 0));
  if (s.num_experts > 0) {
    MOERL_ASSIGN_OR_RETURN(s.experts_per_token, IntField(j, "num_experts_per_tok", source, true));
    MOERL_ASSIGN_OR_RETURN(s.moe_intermediate_size,
                           IntField(j, "moe_intermediate_size", source, true));
    MOERL_ASSIGN_OR_RETURN(s.decoder_sparse_step,
                           IntField(j, "decoder_sparse_step", source, false, 1));
    if (s.experts_per_token > s.num_experts) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": num_experts_per_tok (", s.experts_per_token,
                       ") is larger than num_experts (", s.num_experts, ")"));
    }
  }
  if (j.contains("mlp_only_layers") && !j["mlp_only_layers"].is_null()) {
    const Json& layers = j["mlp_only_layers"];
    if (!layers.is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": field 'mlp_only_layers' must be a list of layer indices"));
    }
    for (const Json& l : layers) {
      if (!l.is_number_integer() || l.get<int64_t>() < 0 || l.get<int64_t>() >= s.num_layers) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ": 'mlp_only_layers' entries must be layer indices in [0, ", s.num_layers,
            "), found ", l.dump()));
      }
      s.mlp_only_layers.push_back(l.get<int64_t>());
    }
  }
  if (j.contains("tie_word_embeddings")) {
    if (!j["tie_word_embeddings"].is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": field 'tie_word_embeddings' must be true or false"));
    }
    s.tie_word_embeddings = j["tie_word_embeddings"];
  }
  return s;
}

absl::StatusOr<ModelShape> LoadModelShape(const std::string& path) {
  std::string file = path;
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) file = path + "/config.json";
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(
        "cannot read model config '", file,
        "': actor.path must be a Hugging Face model directory (config.json is enough) or the "
        "config.json file itself"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseModelShape(text.str(), file);
}

}  // namespace moerl
