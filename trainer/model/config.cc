#include "trainer/model/config.h"

#include <algorithm>
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace moerl {
namespace {

using json = nlohmann::json;

absl::Status Bad(const std::string& where, const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": key \"", key, "\" ", what));
}

absl::Status GetInt(const json& j, const std::string& where, const char* key, bool required,
                    int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return required ? Bad(where, key, "is required") : absl::OkStatus();
  }
  if (!it->is_number_integer()) return Bad(where, key, absl::StrCat("must be an integer, found ", it->dump()));
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status GetDouble(const json& j, const std::string& where, const char* key, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return Bad(where, key, absl::StrCat("must be a number, found ", it->dump()));
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::Status GetBool(const json& j, const std::string& where, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return Bad(where, key, absl::StrCat("must be true/false, found ", it->dump()));
  *out = it->get<bool>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not valid JSON at byte ", e.byte, ": ", e.what()));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected a JSON object, found ", j.type_name()));
  }
  ModelConfig c;
  if (j.contains("model_type") && j["model_type"].is_string()) c.model_type = j["model_type"];
  if (c.model_type != "qwen3_moe" && c.model_type != "qwen3") {
    return Bad(where, "model_type", absl::StrCat("is \"", c.model_type, "\"; expected qwen3_moe or qwen3"));
  }
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "vocab_size", true, &c.vocab_size));
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "hidden_size", true, &c.hidden_size));
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "intermediate_size", false, &c.intermediate_size));
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "num_hidden_layers", true, &c.num_hidden_layers));
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "num_attention_heads", true, &c.num_attention_heads));
  c.num_key_value_heads = c.num_attention_heads;
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "num_key_value_heads", false, &c.num_key_value_heads));
  if (c.num_attention_heads > 0) c.head_dim = c.hidden_size / c.num_attention_heads;
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "head_dim", false, &c.head_dim));
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "max_position_embeddings", false, &c.max_position_embeddings));
  MOERL_RETURN_IF_ERROR(GetDouble(j, where, "rms_norm_eps", &c.rms_norm_eps));
  MOERL_RETURN_IF_ERROR(GetDouble(j, where, "rope_theta", &c.rope_theta));
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_object()) return Bad(where, key, "must be an object or null");
    MOERL_RETURN_IF_ERROR(GetDouble(*it, where + "." + key, "rope_theta", &c.rope_theta));
    for (const char* type_key : {"rope_type", "type"}) {
      auto t = it->find(type_key);
      if (t != it->end() && t->is_string() && *t != "default") {
        return Bad(where, std::string(key) + "." + type_key,
                   absl::StrCat("is ", t->dump(), "; only default RoPE is supported"));
      }
    }
  }
  MOERL_RETURN_IF_ERROR(GetBool(j, where, "tie_word_embeddings", &c.tie_word_embeddings));
  if (!j.contains("num_experts")) {
    MOERL_RETURN_IF_ERROR(GetInt(j, where, "num_local_experts", false, &c.num_experts));
  }
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "num_experts", false, &c.num_experts));
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "num_experts_per_tok", false, &c.num_experts_per_tok));
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "moe_intermediate_size", false, &c.moe_intermediate_size));
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "decoder_sparse_step", false, &c.decoder_sparse_step));
  MOERL_RETURN_IF_ERROR(GetBool(j, where, "norm_topk_prob", &c.norm_topk_prob));
  MOERL_RETURN_IF_ERROR(GetDouble(j, where, "router_aux_loss_coef", &c.router_aux_loss_coef));
  MOERL_RETURN_IF_ERROR(GetDouble(j, where, "router_z_loss_coef", &c.router_z_loss_coef));
  MOERL_RETURN_IF_ERROR(GetDouble(j, where, "initializer_range", &c.initializer_range));
  MOERL_RETURN_IF_ERROR(GetInt(j, where, "bos_token_id", false, &c.bos_token_id));
  if (auto it = j.find("mlp_only_layers"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return Bad(where, "mlp_only_layers", "must be a list of layer indices");
    for (const json& v : *it) {
      if (!v.is_number_integer()) return Bad(where, "mlp_only_layers", "must hold integers");
      c.mlp_only_layers.push_back(v.get<int64_t>());
    }
  }
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      c.eos_token_ids.push_back(it->get<int64_t>());
    } else if (it->is_array()) {
      for (const json& v : *it) {
        if (!v.is_number_integer()) return Bad(where, "eos_token_id", "must hold integers");
        c.eos_token_ids.push_back(v.get<int64_t>());
      }
    } else {
      return Bad(where, "eos_token_id", "must be an integer or a list of integers");
    }
  }
  bool flag = false;
  MOERL_RETURN_IF_ERROR(GetBool(j, where, "attention_bias", &flag));
  if (flag) return Bad(where, "attention_bias", "is true; Qwen3 has no attention bias");
  flag = false;
  MOERL_RETURN_IF_ERROR(GetBool(j, where, "use_sliding_window", &flag));
  if (flag) return Bad(where, "use_sliding_window", "is true; sliding windows are not supported");
  if (auto it = j.find("hidden_act"); it != j.end() && *it != "silu") {
    return Bad(where, "hidden_act", absl::StrCat("is ", it->dump(), "; only \"silu\" is supported"));
  }
  MOERL_RETURN_IF_ERROR(Annotate(c.Validate(), where));
  return c;
}

absl::StatusOr<ModelConfig> ModelConfig::FromFile(const std::string& path) {
  MOERL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, "model config"));
  return FromJson(text, path);
}

absl::Status ModelConfig::Validate() const {
  auto positive = [](int64_t v, const char* key) -> absl::Status {
    if (v > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("key \"", key, "\" must be > 0, found ", v));
  };
  MOERL_RETURN_IF_ERROR(positive(vocab_size, "vocab_size"));
  MOERL_RETURN_IF_ERROR(positive(hidden_size, "hidden_size"));
  MOERL_RETURN_IF_ERROR(positive(num_hidden_layers, "num_hidden_layers"));
  MOERL_RETURN_IF_ERROR(positive(num_attention_heads, "num_attention_heads"));
  MOERL_RETURN_IF_ERROR(positive(num_key_value_heads, "num_key_value_heads"));
  MOERL_RETURN_IF_ERROR(positive(head_dim, "head_dim"));
  MOERL_RETURN_IF_ERROR(positive(decoder_sparse_step, "decoder_sparse_step"));
  // Far above any real model, low enough that loops and allocations driven by
  // these values cannot hang or overflow.
  auto at_most = [](int64_t v, int64_t limit, const char* key) -> absl::Status {
    if (v <= limit) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("key \"", key, "\" is ", v, ", above the supported maximum ", limit));
  };
  constexpr int64_t kMaxDim = int64_t{1} << 24;
  MOERL_RETURN_IF_ERROR(at_most(vocab_size, kMaxDim, "vocab_size"));
  MOERL_RETURN_IF_ERROR(at_most(hidden_size, kMaxDim, "hidden_size"));
  MOERL_RETURN_IF_ERROR(at_most(intermediate_size, kMaxDim, "intermediate_size"));
  MOERL_RETURN_IF_ERROR(at_most(moe_intermediate_size, kMaxDim, "moe_intermediate_size"));
  MOERL_RETURN_IF_ERROR(at_most(head_dim, 1 << 16, "head_dim"));
  MOERL_RETURN_IF_ERROR(at_most(num_hidden_layers, 4096, "num_hidden_layers"));
  MOERL_RETURN_IF_ERROR(at_most(num_attention_heads, 1 << 16, "num_attention_heads"));
  MOERL_RETURN_IF_ERROR(at_most(num_experts, 1 << 16, "num_experts"));
  for (int64_t layer : mlp_only_layers) {
    if (layer < 0 || layer >= num_hidden_layers) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key \"mlp_only_layers\" holds layer ", layer, ", outside [0, num_hidden_layers=",
          num_hidden_layers, ")"));
    }
  }
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("key \"head_dim\" must be even for RoPE, found ", head_dim));
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key \"num_attention_heads\" (", num_attention_heads,
        ") must be a multiple of \"num_key_value_heads\" (", num_key_value_heads, ")"));
  }
  bool any_dense = false;
  for (int64_t l = 0; l < num_hidden_layers; ++l) any_dense |= !IsMoeLayer(l);
  if (any_dense) MOERL_RETURN_IF_ERROR(positive(intermediate_size, "intermediate_size"));
  if (HasMoeLayers()) {
    MOERL_RETURN_IF_ERROR(positive(moe_intermediate_size, "moe_intermediate_size"));
    MOERL_RETURN_IF_ERROR(positive(num_experts_per_tok, "num_experts_per_tok"));
    if (num_experts_per_tok > num_experts) {
      return absl::InvalidArgumentError(absl::StrCat("key \"num_experts_per_tok\" (", num_experts_per_tok,
                                                     ") exceeds \"num_experts\" (", num_experts, ")"));
    }
  }
  return absl::OkStatus();
}

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) {
    return false;
  }
  return num_experts > 0 && (layer + 1) % decoder_sparse_step == 0;
}

int64_t ModelConfig::NumMoeLayers() const {
  int64_t n = 0;
  for (int64_t l = 0; l < num_hidden_layers; ++l) n += IsMoeLayer(l) ? 1 : 0;
  return n;
}

bool ModelConfig::HasMoeLayers() const { return NumMoeLayers() > 0; }

std::string ModelConfig::ToJson() const {
  const bool moe = model_type == "qwen3_moe";
  json j = {
      {"architectures", {moe ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM"}},
      {"model_type", model_type},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"head_dim", head_dim},
      {"hidden_act", "silu"},
      {"max_position_embeddings", max_position_embeddings},
      {"rms_norm_eps", rms_norm_eps},
      {"rope_theta", rope_theta},
      {"rope_scaling", nullptr},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"use_sliding_window", false},
      {"sliding_window", nullptr},
      {"tie_word_embeddings", tie_word_embeddings},
      {"initializer_range", initializer_range},
      {"torch_dtype", "float32"},
  };
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  if (eos_token_ids.size() > 1) j["eos_token_id"] = eos_token_ids;
  if (moe) {
    j["num_experts"] = num_experts;
    j["num_experts_per_tok"] = num_experts_per_tok;
    j["moe_intermediate_size"] = moe_intermediate_size;
    j["decoder_sparse_step"] = decoder_sparse_step;
    j["mlp_only_layers"] = mlp_only_layers;
    j["norm_topk_prob"] = norm_topk_prob;
    j["router_aux_loss_coef"] = router_aux_loss_coef;
    j["output_router_logits"] = false;
  }
  return j.dump(2) + "\n";
}

}  // namespace moerl
