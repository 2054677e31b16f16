#include "rollout/probe.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace moerl {
namespace {

absl::StatusOr<std::string> Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<Probe> ParseProbe(const std::string& text, const std::string& where) {
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
  };
  if (!json.is_object()) return bad("not a JSON object");
  if (!json.contains("format_version") || !json["format_version"].is_number_integer() ||
      json["format_version"].get<int64_t>() != kProbeFormatVersion) {
    return bad(absl::StrCat("format_version must be ", kProbeFormatVersion));
  }
  Probe probe;
  if (json.contains("version") && json["version"].is_number_integer()) {
    probe.version = json["version"].get<int64_t>();
  }
  if (!json.contains("sequences") || !json["sequences"].is_array()) {
    return bad("'sequences' must be an array");
  }
  for (size_t i = 0; i < json["sequences"].size(); ++i) {
    const nlohmann::json& item = json["sequences"][i];
    const std::string at = absl::StrCat("sequences[", i, "]");
    if (!item.is_object() || !item.contains("input_ids") || !item["input_ids"].is_array() ||
        !item.contains("logprobs") || !item["logprobs"].is_array()) {
      return bad(at + " must hold arrays 'input_ids' and 'logprobs'");
    }
    ProbeSequence seq;
    for (const nlohmann::json& id : item["input_ids"]) {
      if (!id.is_number_integer()) return bad(at + ".input_ids holds a non-integer");
      seq.input_ids.push_back(id.get<int32_t>());
    }
    for (const nlohmann::json& lp : item["logprobs"]) {
      if (!lp.is_number()) return bad(at + ".logprobs holds a non-number");
      seq.logprobs.push_back(lp.get<double>());
    }
    if (seq.input_ids.size() < 2 || seq.logprobs.size() + 1 != seq.input_ids.size()) {
      return bad(absl::StrCat(at, " has ", seq.input_ids.size(), " input_ids and ",
                              seq.logprobs.size(), " logprobs; expected n >= 2 and n - 1"));
    }
    probe.sequences.push_back(std::move(seq));
  }
  return probe;
}

absl::StatusOr<std::optional<Probe>> ReadProbeFile(const std::string& path) {
  absl::StatusOr<std::string> text = Slurp(path);
  if (absl::IsNotFound(text.status())) return std::optional<Probe>();
  if (!text.ok()) return text.status();
  absl::StatusOr<Probe> probe = ParseProbe(*text, path);
  if (!probe.ok()) return probe.status();
  return std::optional<Probe>(*std::move(probe));
}

std::string ProbeToJson(const Probe& probe) {
  nlohmann::json json;
  json["format_version"] = kProbeFormatVersion;
  json["version"] = probe.version;
  json["sequences"] = nlohmann::json::array();
  for (const ProbeSequence& seq : probe.sequences) {
    json["sequences"].push_back({{"input_ids", seq.input_ids}, {"logprobs", seq.logprobs}});
  }
  return json.dump();
}

absl::Status CompareProbe(const ProbeSequence& expected, const std::vector<double>& got,
                          double tolerance) {
  if (got.size() != expected.logprobs.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("answered ", got.size(), " log-probs, expected ", expected.logprobs.size()));
  }
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double diff = std::fabs(got[i] - expected.logprobs[i]);
    if (!(diff <= worst)) {  // NaN counts as the worst
      worst = std::isnan(diff) ? INFINITY : diff;
      at = i;
    }
  }
  if (worst > tolerance) {
    return absl::FailedPreconditionError(absl::StrCat(
        "log-prob of token ", at + 1, " is ", got[at], ", expected ", expected.logprobs[at],
        " (|difference| ", worst, " > rollout.probe_tolerance=", tolerance, ")"));
  }
  return absl::OkStatus();
}

int64_t ReadNumExpertsPerToken(const std::string& model_dir) {
  absl::StatusOr<std::string> text = Slurp(absl::StrCat(model_dir, "/config.json"));
  if (!text.ok()) return 0;
  const nlohmann::json json = nlohmann::json::parse(*text, nullptr, false);
  if (!json.is_object() || !json.contains("num_experts_per_tok") ||
      !json["num_experts_per_tok"].is_number_integer()) {
    return 0;
  }
  return json["num_experts_per_tok"].get<int64_t>();
}

}  // namespace moerl
