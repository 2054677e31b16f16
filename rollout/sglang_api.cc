#include "rollout/sglang_api.h"

#include <cmath>
#include <cstring>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace moerl {
namespace {

using json = nlohmann::json;

std::string Path(const std::string& where, const std::string& key) {
  return where.empty() ? key : absl::StrCat(where, ".", key);
}

const char* TypeName(const json& v) { return v.type_name(); }

absl::Status WrongType(const std::string& path, const char* expected, const json& found) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, " must be ", expected, ", found ", TypeName(found), " ", found.dump()));
}

absl::Status RejectUnknown(const json& obj, const std::string& where, const std::set<std::string>& known) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!known.count(it.key())) {
      return absl::InvalidArgumentError(absl::StrCat("unknown field ", Path(where, it.key()), " (known: ",
                                                     absl::StrJoin(known, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadInt(const json& v, const std::string& path, int64_t* out) {
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return absl::OkStatus();
  }
  // 3.0 is an integer to Python's json; accept whole floats.
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9.0e15) {
      *out = static_cast<int64_t>(d);
      return absl::OkStatus();
    }
  }
  return WrongType(path, "an integer", v);
}

absl::Status ReadDouble(const json& v, const std::string& path, double* out) {
  if (!v.is_number()) return WrongType(path, "a number", v);
  *out = v.get<double>();
  if (!std::isfinite(*out)) return absl::InvalidArgumentError(absl::StrCat(path, " must be finite"));
  return absl::OkStatus();
}

absl::Status ReadBool(const json& v, const std::string& path, bool* out) {
  if (!v.is_boolean()) return WrongType(path, "true or false", v);
  *out = v.get<bool>();
  return absl::OkStatus();
}

absl::Status ReadString(const json& v, const std::string& path, std::string* out) {
  if (!v.is_string()) return WrongType(path, "a string", v);
  *out = v.get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadIntList(const json& v, const std::string& path, std::vector<int64_t>* out) {
  if (!v.is_array()) return WrongType(path, "a list of integers", v);
  out->clear();
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t x = 0;
    MOERL_RETURN_IF_ERROR(ReadInt(v[i], absl::StrCat(path, "[", i, "]"), &x));
    out->push_back(x);
  }
  return absl::OkStatus();
}

absl::StatusOr<json> ParseBody(const std::string& body) {
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("request body is not valid JSON: ", e.what()));
  }
}

absl::Status NeutralOnly(const std::string& path, bool neutral, const json& found, const char* want) {
  if (neutral) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(path, " is not supported by moerl's server; send ", want, " or leave it out (found ", found.dump(), ")"));
}

absl::StatusOr<SamplingParams> ParseSamplingParams(const json& j, const std::string& where) {
  if (!j.is_object()) return WrongType(where, "an object", j);
  MOERL_RETURN_IF_ERROR(RejectUnknown(
      j, where,
      {"max_new_tokens", "min_new_tokens", "temperature", "top_p", "top_k", "stop_token_ids", "ignore_eos",
       "skip_special_tokens", "sampling_seed", "spaces_between_special_tokens", "no_stop_trim", "stop", "n", "min_p",
       "frequency_penalty", "presence_penalty", "repetition_penalty"}));
  SamplingParams p;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    const std::string path = Path(where, k);
    if (v.is_null()) continue;  // Python None: the default
    if (k == "max_new_tokens") {
      MOERL_RETURN_IF_ERROR(ReadInt(v, path, &p.max_new_tokens));
      if (p.max_new_tokens < 0) {
        return absl::InvalidArgumentError(absl::StrCat(path, " must be >= 0, found ", p.max_new_tokens));
      }
    } else if (k == "min_new_tokens") {
      MOERL_RETURN_IF_ERROR(ReadInt(v, path, &p.min_new_tokens));
      if (p.min_new_tokens < 0) {
        return absl::InvalidArgumentError(absl::StrCat(path, " must be >= 0, found ", p.min_new_tokens));
      }
    } else if (k == "temperature") {
      MOERL_RETURN_IF_ERROR(ReadDouble(v, path, &p.temperature));
      if (p.temperature < 0) {
        return absl::InvalidArgumentError(absl::StrCat(path, " must be >= 0 (0 = greedy), found ", p.temperature));
      }
    } else if (k == "top_p") {
      MOERL_RETURN_IF_ERROR(ReadDouble(v, path, &p.top_p));
      if (!(p.top_p > 0 && p.top_p <= 1)) {
        return absl::InvalidArgumentError(absl::StrCat(path, " must be in (0, 1], found ", p.top_p));
      }
    } else if (k == "top_k") {
      MOERL_RETURN_IF_ERROR(ReadInt(v, path, &p.top_k));
      if (p.top_k < -1) {
        return absl::InvalidArgumentError(absl::StrCat(path, " must be -1 (off) or >= 1, found ", p.top_k));
      }
    } else if (k == "stop_token_ids") {
      MOERL_RETURN_IF_ERROR(ReadIntList(v, path, &p.stop_token_ids));
    } else if (k == "ignore_eos") {
      MOERL_RETURN_IF_ERROR(ReadBool(v, path, &p.ignore_eos));
    } else if (k == "skip_special_tokens") {
      MOERL_RETURN_IF_ERROR(ReadBool(v, path, &p.skip_special_tokens));
    } else if (k == "sampling_seed") {
      int64_t seed = 0;
      MOERL_RETURN_IF_ERROR(ReadInt(v, path, &seed));
      p.sampling_seed = seed;
    } else if (k == "spaces_between_special_tokens" || k == "no_stop_trim") {
      bool ignored = false;  // only affect text, which this server does not return
      MOERL_RETURN_IF_ERROR(ReadBool(v, path, &ignored));
    } else if (k == "stop") {
      const bool empty = (v.is_array() && v.empty()) || (v.is_string() && v.get<std::string>().empty());
      MOERL_RETURN_IF_ERROR(NeutralOnly(path, empty, v, "stop_token_ids instead of stop strings"));
    } else if (k == "n") {
      MOERL_RETURN_IF_ERROR(NeutralOnly(path, v == json(1), v, "1 (send n separate requests)"));
    } else if (k == "min_p" || k == "frequency_penalty" || k == "presence_penalty") {
      double x = 0;
      MOERL_RETURN_IF_ERROR(ReadDouble(v, path, &x));
      MOERL_RETURN_IF_ERROR(NeutralOnly(path, x == 0.0, v, "0"));
    } else if (k == "repetition_penalty") {
      double x = 0;
      MOERL_RETURN_IF_ERROR(ReadDouble(v, path, &x));
      MOERL_RETURN_IF_ERROR(NeutralOnly(path, x == 1.0, v, "1"));
    }
  }
  return p;
}

json SamplingParamsToJson(const SamplingParams& p) {
  json j;
  j["max_new_tokens"] = p.max_new_tokens;
  if (p.min_new_tokens != 0) j["min_new_tokens"] = p.min_new_tokens;
  j["temperature"] = p.temperature;
  j["top_p"] = p.top_p;
  j["top_k"] = p.top_k;
  j["stop_token_ids"] = p.stop_token_ids;
  j["ignore_eos"] = p.ignore_eos;
  j["skip_special_tokens"] = p.skip_special_tokens;
  if (p.sampling_seed) j["sampling_seed"] = *p.sampling_seed;
  return j;
}

json LogprobsToJson(const std::vector<TokenLogprob>& entries) {
  json a = json::array();
  for (const TokenLogprob& e : entries) {
    a.push_back(json::array({e.logprob ? json(*e.logprob) : json(nullptr), e.token_id, nullptr}));
  }
  return a;
}

absl::StatusOr<std::vector<TokenLogprob>> ParseLogprobs(const json& v, const std::string& path) {
  if (!v.is_array()) return WrongType(path, "a list of [logprob, token_id, text] triples", v);
  std::vector<TokenLogprob> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string p = absl::StrCat(path, "[", i, "]");
    const json& e = v[i];
    if (!e.is_array() || e.size() < 2) return WrongType(p, "a [logprob, token_id, text] triple", e);
    TokenLogprob t;
    if (!e[0].is_null()) {
      double lp = 0;
      MOERL_RETURN_IF_ERROR(ReadDouble(e[0], p + "[0]", &lp));
      t.logprob = lp;
    }
    MOERL_RETURN_IF_ERROR(ReadInt(e[1], p + "[1]", &t.token_id));
    out.push_back(t);
  }
  return out;
}

absl::StatusOr<FinishReason> ParseFinishReason(const json& v, const std::string& path) {
  if (!v.is_object()) return WrongType(path, "an object", v);
  FinishReason f;
  if (!v.contains("type")) return absl::InvalidArgumentError(absl::StrCat(path, ".type is missing"));
  MOERL_RETURN_IF_ERROR(ReadString(v["type"], path + ".type", &f.type));
  if (f.type != "stop" && f.type != "length" && f.type != "abort") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".type must be stop, length or abort, found \"", f.type, "\""));
  }
  if (v.contains("matched") && v["matched"].is_number()) {
    int64_t m = 0;
    MOERL_RETURN_IF_ERROR(ReadInt(v["matched"], path + ".matched", &m));
    f.matched = m;
  }  // a matched stop *string* is possible from SGLang; moerl ignores it
  if (v.contains("length") && !v["length"].is_null()) {
    int64_t n = 0;
    MOERL_RETURN_IF_ERROR(ReadInt(v["length"], path + ".length", &n));
    f.length = n;
  }
  if (v.contains("message") && !v["message"].is_null()) {
    MOERL_RETURN_IF_ERROR(ReadString(v["message"], path + ".message", &f.message));
  }
  return f;
}

json FinishReasonToJson(const FinishReason& f) {
  json j;
  j["type"] = f.type;
  if (f.type == "stop") j["matched"] = f.matched ? json(*f.matched) : json(nullptr);
  if (f.type == "length") j["length"] = f.length ? json(*f.length) : json(nullptr);
  if (f.type == "abort") j["message"] = f.message;
  return j;
}

// SGLang's weight_version is a string; tolerate a number from other servers.
absl::Status ReadVersion(const json& v, const std::string& path, std::string* out) {
  if (v.is_number_integer()) {
    *out = std::to_string(v.get<int64_t>());
    return absl::OkStatus();
  }
  return ReadString(v, path, out);
}

}  // namespace

bool SamplingParams::operator==(const SamplingParams& o) const {
  return max_new_tokens == o.max_new_tokens && min_new_tokens == o.min_new_tokens &&
         temperature == o.temperature && top_p == o.top_p && top_k == o.top_k &&
         stop_token_ids == o.stop_token_ids && ignore_eos == o.ignore_eos &&
         skip_special_tokens == o.skip_special_tokens && sampling_seed == o.sampling_seed;
}

nlohmann::json GenerateRequestToJson(const GenerateRequest& r) {
  json j;
  if (r.batched) {
    j["input_ids"] = r.input_ids;
  } else {
    j["input_ids"] = r.input_ids.empty() ? std::vector<int64_t>{} : r.input_ids[0];
  }
  if (r.sampling_params.size() == 1) {
    j["sampling_params"] = SamplingParamsToJson(r.sampling_params[0]);
  } else {
    json a = json::array();
    for (const SamplingParams& p : r.sampling_params) a.push_back(SamplingParamsToJson(p));
    j["sampling_params"] = a;
  }
  j["return_logprob"] = r.return_logprob;
  j["logprob_start_len"] = r.logprob_start_len;
  if (r.return_routed_experts) j["return_routed_experts"] = true;
  if (!r.rid.empty()) j["rid"] = (!r.batched && r.rid.size() == 1) ? json(r.rid[0]) : json(r.rid);
  j["stream"] = false;
  return j;
}

absl::StatusOr<GenerateRequest> ParseGenerateRequest(const std::string& body) {
  MOERL_ASSIGN_OR_RETURN(json j, ParseBody(body));
  return ParseGenerateRequest(j);
}

absl::StatusOr<GenerateRequest> ParseGenerateRequest(const nlohmann::json& j) {
  if (!j.is_object()) return WrongType("the request body", "a JSON object", j);
  MOERL_RETURN_IF_ERROR(RejectUnknown(
      j, "",
      {"input_ids", "text", "input_embeds", "sampling_params", "return_logprob", "logprob_start_len",
       "top_logprobs_num", "token_ids_logprob", "return_text_in_logprobs", "stream", "rid",
       "return_routed_experts", "image_data", "lora_path", "return_hidden_states"}));
  GenerateRequest r;
  for (const char* unsupported : {"text", "input_embeds"}) {
    if (j.contains(unsupported) && !j[unsupported].is_null()) {
      return absl::InvalidArgumentError(absl::StrCat(
          unsupported, " is not supported: moerl's server takes input_ids only (tokenize on the client)"));
    }
  }
  if (!j.contains("input_ids") || j["input_ids"].is_null()) {
    return absl::InvalidArgumentError("input_ids is missing: either text, input_ids or input_embeds should be "
                                      "provided, and moerl's server takes input_ids");
  }
  const json& ids = j["input_ids"];
  if (!ids.is_array() || ids.empty()) return WrongType("input_ids", "a non-empty list of ints or of lists", ids);
  r.batched = ids[0].is_array();
  if (r.batched) {
    for (size_t i = 0; i < ids.size(); ++i) {
      std::vector<int64_t> row;
      MOERL_RETURN_IF_ERROR(ReadIntList(ids[i], absl::StrCat("input_ids[", i, "]"), &row));
      if (row.empty()) return absl::InvalidArgumentError(absl::StrCat("input_ids[", i, "] is empty"));
      r.input_ids.push_back(std::move(row));
    }
  } else {
    std::vector<int64_t> row;
    MOERL_RETURN_IF_ERROR(ReadIntList(ids, "input_ids", &row));
    r.input_ids.push_back(std::move(row));
  }
  const size_t rows = r.input_ids.size();
  if (j.contains("sampling_params") && !j["sampling_params"].is_null()) {
    const json& sp = j["sampling_params"];
    r.sampling_params.clear();
    if (sp.is_array()) {
      if (sp.size() != rows) {
        return absl::InvalidArgumentError(absl::StrCat("sampling_params has ", sp.size(), " entries but input_ids has ",
                                                       rows, " rows; send one object or one per row"));
      }
      for (size_t i = 0; i < sp.size(); ++i) {
        MOERL_ASSIGN_OR_RETURN(SamplingParams p, ParseSamplingParams(sp[i], absl::StrCat("sampling_params[", i, "]")));
        r.sampling_params.push_back(p);
      }
    } else {
      MOERL_ASSIGN_OR_RETURN(SamplingParams p, ParseSamplingParams(sp, "sampling_params"));
      r.sampling_params.push_back(p);
    }
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (v.is_null()) continue;
    if (k == "return_logprob") {
      MOERL_RETURN_IF_ERROR(ReadBool(v, k, &r.return_logprob));
    } else if (k == "logprob_start_len") {
      MOERL_RETURN_IF_ERROR(ReadInt(v, k, &r.logprob_start_len));
      if (r.logprob_start_len < -1) {
        return absl::InvalidArgumentError(absl::StrCat(k, " must be -1 (output only) or >= 0, found ",
                                                       r.logprob_start_len));
      }
      for (size_t i = 0; i < rows; ++i) {
        if (r.logprob_start_len >= static_cast<int64_t>(r.input_ids[i].size())) {
          return absl::InvalidArgumentError(absl::StrCat(k, " is ", r.logprob_start_len, " but input_ids",
                                                         r.batched ? absl::StrCat("[", i, "]") : "", " has only ",
                                                         r.input_ids[i].size(), " tokens"));
        }
      }
    } else if (k == "return_routed_experts") {
      MOERL_RETURN_IF_ERROR(ReadBool(v, k, &r.return_routed_experts));
    } else if (k == "rid") {
      if (v.is_string()) {
        if (r.batched) {
          for (size_t i = 0; i < rows; ++i) r.rid.push_back(absl::StrCat(v.get<std::string>(), "_", i));
        } else {
          r.rid.push_back(v.get<std::string>());
        }
      } else if (v.is_array()) {
        if (v.size() != rows) {
          return absl::InvalidArgumentError(
              absl::StrCat("rid has ", v.size(), " entries but input_ids has ", rows, " rows"));
        }
        for (size_t i = 0; i < v.size(); ++i) {
          std::string s;
          MOERL_RETURN_IF_ERROR(ReadString(v[i], absl::StrCat("rid[", i, "]"), &s));
          r.rid.push_back(s);
        }
      } else {
        return WrongType(k, "a string or a list of strings", v);
      }
    } else if (k == "stream") {
      MOERL_RETURN_IF_ERROR(NeutralOnly(k, v == json(false), v, "false"));
    } else if (k == "top_logprobs_num") {
      MOERL_RETURN_IF_ERROR(NeutralOnly(k, v == json(0), v, "0"));
    } else if (k == "token_ids_logprob") {
      MOERL_RETURN_IF_ERROR(NeutralOnly(k, v.is_array() && v.empty(), v, "[]"));
    } else if (k == "return_text_in_logprobs" || k == "return_hidden_states") {
      MOERL_RETURN_IF_ERROR(NeutralOnly(k, v == json(false), v, "false"));
    } else if (k == "image_data") {
      // AReaL's ModelRequest defaults image_data to [] and sends it as is;
      // SGLang reads an empty list (or one empty entry per row) as no images.
      bool no_images = v.is_array();
      for (const json& row : v) no_images = no_images && (row.is_null() || (row.is_array() && row.empty()));
      MOERL_RETURN_IF_ERROR(NeutralOnly(k, no_images, v, "null or []"));
    } else if (k == "lora_path") {
      MOERL_RETURN_IF_ERROR(NeutralOnly(k, false, v, "null"));
    }
  }
  return r;
}

nlohmann::json UpdateWeightsFromDiskRequestToJson(const UpdateWeightsFromDiskRequest& r) {
  json j;
  j["model_path"] = r.model_path;
  j["abort_all_requests"] = r.abort_all_requests;
  if (r.weight_version) j["weight_version"] = *r.weight_version;
  if (r.load_format) j["load_format"] = *r.load_format;
  if (!r.flush_cache) j["flush_cache"] = false;
  return j;
}

absl::StatusOr<UpdateWeightsFromDiskRequest> ParseUpdateWeightsFromDiskRequest(const std::string& body) {
  MOERL_ASSIGN_OR_RETURN(json j, ParseBody(body));
  if (!j.is_object()) return WrongType("the request body", "a JSON object", j);
  MOERL_RETURN_IF_ERROR(RejectUnknown(j, "",
                                      {"model_path", "load_format", "abort_all_requests", "weight_version",
                                       "flush_cache", "is_async", "torch_empty_cache", "keep_pause",
                                       "recapture_cuda_graph"}));
  UpdateWeightsFromDiskRequest r;
  if (!j.contains("model_path")) return absl::InvalidArgumentError("model_path is missing");
  MOERL_RETURN_IF_ERROR(ReadString(j["model_path"], "model_path", &r.model_path));
  if (r.model_path.empty()) return absl::InvalidArgumentError("model_path is empty");
  if (j.contains("abort_all_requests") && !j["abort_all_requests"].is_null()) {
    MOERL_RETURN_IF_ERROR(ReadBool(j["abort_all_requests"], "abort_all_requests", &r.abort_all_requests));
  }
  if (j.contains("weight_version") && !j["weight_version"].is_null()) {
    std::string v;
    MOERL_RETURN_IF_ERROR(ReadVersion(j["weight_version"], "weight_version", &v));
    r.weight_version = v;
  }
  if (j.contains("load_format") && !j["load_format"].is_null()) {
    std::string f;
    MOERL_RETURN_IF_ERROR(ReadString(j["load_format"], "load_format", &f));
    if (f != "auto" && f != "safetensors") {
      return absl::InvalidArgumentError(
          absl::StrCat("load_format must be null, \"auto\" or \"safetensors\", found \"", f, "\""));
    }
    r.load_format = f;
  }
  if (j.contains("flush_cache") && !j["flush_cache"].is_null()) {
    MOERL_RETURN_IF_ERROR(ReadBool(j["flush_cache"], "flush_cache", &r.flush_cache));
  }
  for (const char* flag : {"is_async", "torch_empty_cache", "keep_pause", "recapture_cuda_graph"}) {
    if (j.contains(flag) && !j[flag].is_null()) {
      bool ignored = false;  // no effect on a CPU server without CUDA graphs
      MOERL_RETURN_IF_ERROR(ReadBool(j[flag], flag, &ignored));
    }
  }
  return r;
}

nlohmann::json AbortRequestToJson(const AbortRequest& r) {
  json j;
  j["rid"] = r.rid;
  if (r.abort_all) j["abort_all"] = true;
  return j;
}

absl::StatusOr<AbortRequest> ParseAbortRequest(const std::string& body) {
  MOERL_ASSIGN_OR_RETURN(json j, ParseBody(body));
  if (!j.is_object()) return WrongType("the request body", "a JSON object", j);
  MOERL_RETURN_IF_ERROR(RejectUnknown(j, "", {"rid", "abort_all", "finished_reason", "abort_message"}));
  AbortRequest r;
  if (j.contains("rid") && !j["rid"].is_null()) MOERL_RETURN_IF_ERROR(ReadString(j["rid"], "rid", &r.rid));
  if (j.contains("abort_all") && !j["abort_all"].is_null()) {
    MOERL_RETURN_IF_ERROR(ReadBool(j["abort_all"], "abort_all", &r.abort_all));
  }
  if (r.rid.empty() && !r.abort_all) return absl::InvalidArgumentError("rid is missing (or set abort_all: true)");
  return r;
}

nlohmann::json GenerateResponseToJson(const GenerateResponse& r) {
  json j;
  j["text"] = r.text ? json(*r.text) : json("");
  if (r.output_ids) j["output_ids"] = *r.output_ids;
  const MetaInfo& m = r.meta_info;
  json meta;
  meta["id"] = m.id;
  meta["finish_reason"] = m.finish_reason ? FinishReasonToJson(*m.finish_reason) : json(nullptr);
  meta["prompt_tokens"] = m.prompt_tokens;
  meta["completion_tokens"] = m.completion_tokens;
  meta["cached_tokens"] = m.cached_tokens;
  meta["total_retractions"] = m.total_retractions;
  meta["weight_version"] = m.weight_version;
  if (m.output_token_logprobs) meta["output_token_logprobs"] = LogprobsToJson(*m.output_token_logprobs);
  if (m.input_token_logprobs) meta["input_token_logprobs"] = LogprobsToJson(*m.input_token_logprobs);
  if (m.e2e_latency) meta["e2e_latency"] = *m.e2e_latency;
  if (m.routed_experts) meta["routed_experts"] = *m.routed_experts;
  j["meta_info"] = meta;
  if (!r.text) j.erase("text");
  return j;
}

nlohmann::json GenerateResponsesToJson(const std::vector<GenerateResponse>& responses, bool batched) {
  if (!batched && responses.size() == 1) return GenerateResponseToJson(responses[0]);
  json a = json::array();
  for (const GenerateResponse& r : responses) a.push_back(GenerateResponseToJson(r));
  return a;
}

absl::StatusOr<GenerateResponse> ParseGenerateResponse(const nlohmann::json& j) {
  if (!j.is_object()) return WrongType("the response", "a JSON object", j);
  GenerateResponse r;
  if (j.contains("text") && !j["text"].is_null()) {
    std::string t;
    MOERL_RETURN_IF_ERROR(ReadString(j["text"], "text", &t));
    r.text = t;
  }
  if (j.contains("output_ids") && !j["output_ids"].is_null()) {
    std::vector<int64_t> ids;
    MOERL_RETURN_IF_ERROR(ReadIntList(j["output_ids"], "output_ids", &ids));
    r.output_ids = ids;
  }
  if (!j.contains("meta_info")) return absl::InvalidArgumentError("meta_info is missing from the response");
  const json& m = j["meta_info"];
  if (!m.is_object()) return WrongType("meta_info", "an object", m);
  MetaInfo& out = r.meta_info;
  if (m.contains("id") && !m["id"].is_null()) MOERL_RETURN_IF_ERROR(ReadString(m["id"], "meta_info.id", &out.id));
  if (m.contains("finish_reason") && !m["finish_reason"].is_null()) {
    MOERL_ASSIGN_OR_RETURN(FinishReason f, ParseFinishReason(m["finish_reason"], "meta_info.finish_reason"));
    out.finish_reason = f;
  }
  const std::pair<const char*, int64_t*> ints[] = {{"prompt_tokens", &out.prompt_tokens},
                                                   {"completion_tokens", &out.completion_tokens},
                                                   {"cached_tokens", &out.cached_tokens},
                                                   {"total_retractions", &out.total_retractions}};
  for (const auto& [key, dst] : ints) {
    if (m.contains(key) && !m[key].is_null()) {
      MOERL_RETURN_IF_ERROR(ReadInt(m[key], absl::StrCat("meta_info.", key), dst));
    }
  }
  if (m.contains("weight_version") && !m["weight_version"].is_null()) {
    MOERL_RETURN_IF_ERROR(ReadVersion(m["weight_version"], "meta_info.weight_version", &out.weight_version));
  }
  if (m.contains("output_token_logprobs") && !m["output_token_logprobs"].is_null()) {
    MOERL_ASSIGN_OR_RETURN(out.output_token_logprobs,
                           ParseLogprobs(m["output_token_logprobs"], "meta_info.output_token_logprobs"));
  }
  if (m.contains("input_token_logprobs") && !m["input_token_logprobs"].is_null()) {
    MOERL_ASSIGN_OR_RETURN(out.input_token_logprobs,
                           ParseLogprobs(m["input_token_logprobs"], "meta_info.input_token_logprobs"));
  }
  if (m.contains("e2e_latency") && !m["e2e_latency"].is_null()) {
    double s = 0;
    MOERL_RETURN_IF_ERROR(ReadDouble(m["e2e_latency"], "meta_info.e2e_latency", &s));
    out.e2e_latency = s;
  }
  if (m.contains("routed_experts") && !m["routed_experts"].is_null()) {
    std::string b;
    MOERL_RETURN_IF_ERROR(ReadString(m["routed_experts"], "meta_info.routed_experts", &b));
    out.routed_experts = b;
  }
  return r;
}

absl::StatusOr<std::vector<GenerateResponse>> ParseGenerateResponses(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("the /generate reply is not valid JSON: ", e.what()));
  }
  std::vector<GenerateResponse> out;
  if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      absl::StatusOr<GenerateResponse> r = ParseGenerateResponse(j[i]);
      if (!r.ok()) return Annotate(r.status(), absl::StrCat("response [", i, "]"));
      out.push_back(*std::move(r));
    }
    return out;
  }
  MOERL_ASSIGN_OR_RETURN(GenerateResponse r, ParseGenerateResponse(j));
  out.push_back(std::move(r));
  return out;
}

nlohmann::json UpdateWeightsFromDiskResponseToJson(const UpdateWeightsFromDiskResponse& r) {
  return json{{"success", r.success}, {"message", r.message}, {"num_paused_requests", r.num_paused_requests}};
}

absl::StatusOr<UpdateWeightsFromDiskResponse> ParseUpdateWeightsFromDiskResponse(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("the /update_weights_from_disk reply is not valid JSON: ", e.what()));
  }
  if (!j.is_object()) return WrongType("the response", "a JSON object", j);
  UpdateWeightsFromDiskResponse r;
  if (!j.contains("success")) return absl::InvalidArgumentError("success is missing from the response");
  MOERL_RETURN_IF_ERROR(ReadBool(j["success"], "success", &r.success));
  if (j.contains("message") && !j["message"].is_null()) {
    MOERL_RETURN_IF_ERROR(ReadString(j["message"], "message", &r.message));
  }
  if (j.contains("num_paused_requests") && !j["num_paused_requests"].is_null()) {
    MOERL_RETURN_IF_ERROR(ReadInt(j["num_paused_requests"], "num_paused_requests", &r.num_paused_requests));
  }
  return r;
}

nlohmann::json ErrorBody(const std::string& message, int code) {
  return json{{"object", "error"}, {"message", message}, {"type", "Bad Request"}, {"code", code}};
}

std::string EncodeRoutedExperts(const RoutedExperts& e) {
  std::string bytes(e.ids.size() * 4, '\0');
  for (size_t i = 0; i < e.ids.size(); ++i) {
    const uint32_t v = static_cast<uint32_t>(e.ids[i]);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>((v >> (8 * b)) & 0xff);
  }
  return absl::Base64Escape(bytes);
}

absl::StatusOr<RoutedExperts> DecodeRoutedExperts(const std::string& base64, int64_t cols) {
  std::string bytes;
  if (!absl::Base64Unescape(base64, &bytes)) {
    return absl::InvalidArgumentError("meta_info.routed_experts is not valid base64");
  }
  if (cols <= 0) return absl::InvalidArgumentError(absl::StrCat("routed_experts cols must be > 0, found ", cols));
  if (bytes.size() % 4 != 0 || (bytes.size() / 4) % cols != 0) {
    return absl::InvalidArgumentError(absl::StrCat("meta_info.routed_experts holds ", bytes.size(),
                                                   " bytes, not a whole number of int32 rows of ", cols));
  }
  RoutedExperts e;
  e.cols = cols;
  e.rows = static_cast<int64_t>(bytes.size() / 4) / cols;
  e.ids.resize(bytes.size() / 4);
  for (size_t i = 0; i < e.ids.size(); ++i) {
    uint32_t v = 0;
    for (int b = 0; b < 4; ++b) v |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i * 4 + b])) << (8 * b);
    e.ids[i] = static_cast<int32_t>(v);
  }
  return e;
}

}  // namespace moerl
