#include "trainer/optimizer_state_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "nlohmann/json.hpp"
#include "trainer/full_model.h"

namespace moerl {
namespace {

constexpr char kStateFile[] = "state.json";
constexpr char kFormat[] = "moerl-optimizer-state";
constexpr int kVersion = 1;

using ParameterState = TrainOptimizer::ParameterOptimizerState;

// One tensor per parameter, picked from each parameter's state.
std::vector<at::Tensor> Pick(const std::vector<ParameterState>& states, at::Tensor ParameterState::*field) {
  std::vector<at::Tensor> out;
  out.reserve(states.size());
  for (const ParameterState& s : states) out.push_back((s.*field).to(at::kFloat).contiguous());
  return out;
}

// Fp32 zeros shaped like each parameter, filled with this rank's part of the
// tensors in the HF folder `dir`.
absl::StatusOr<std::vector<at::Tensor>> ReadHeldParts(const std::string& dir, Qwen3Model& model,
                                                      HfLoadStats* stats) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : model.parameters()) {
    out.push_back(at::zeros(p.sizes(), p.options().dtype(at::kFloat).requires_grad(false)));
  }
  std::vector<HfBinding> bindings = MasterBindings(model, out);
  MOERL_RETURN_IF_ERROR(LoadHfBindings(dir, model, bindings, stats));
  return out;
}

}  // namespace

GatheredOptimizerState GatherOptimizerState(Qwen3Model& model, const TrainOptimizer& optimizer,
                                            const ParallelState& parallel) {
  const std::vector<ParameterState> states = optimizer.ExportParameterStates();
  GatheredOptimizerState out;
  out.adam_step = optimizer.adam_step();
  auto gather = [&](at::Tensor ParameterState::*field) {
    return GatherFullModel(model, MasterBindings(model, Pick(states, field)), at::kFloat, parallel);
  };
  out.exp_avg = gather(&ParameterState::exp_avg);
  out.exp_avg_sq = gather(&ParameterState::exp_avg_sq);
  if (!states.empty() && states[0].master.defined()) out.master = gather(&ParameterState::master);
  return out;
}

absl::Status WriteOptimizerState(const GatheredOptimizerState& state, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create '", dir, "': ", ec.message()));
  const uint64_t shard_bytes = uint64_t{5} << 30;
  MOERL_RETURN_IF_ERROR(SaveHfCheckpoint(*state.exp_avg, dir + "/exp_avg", at::kFloat, shard_bytes));
  MOERL_RETURN_IF_ERROR(SaveHfCheckpoint(*state.exp_avg_sq, dir + "/exp_avg_sq", at::kFloat, shard_bytes));
  if (state.master) MOERL_RETURN_IF_ERROR(SaveHfCheckpoint(*state.master, dir + "/master", at::kFloat, shard_bytes));
  const nlohmann::json j = {{"format", kFormat},
                            {"version", kVersion},
                            {"adam_step", state.adam_step},
                            {"master_weights", state.master != nullptr}};
  return WriteFileSynced(absl::StrCat(dir, "/", kStateFile), j.dump(2) + "\n");
}

bool HasOptimizerState(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::exists(absl::StrCat(dir, "/", kStateFile), ec);
}

absl::Status ReadOptimizerState(const std::string& dir, Qwen3Model& model, TrainOptimizer* optimizer,
                                HfLoadStats* stats) {
  const std::string path = absl::StrCat(dir, "/", kStateFile);
  MOERL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, "optimizer state"));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != kFormat) {
    return absl::DataLossError(absl::StrCat(path, ": not a JSON object with \"format\": \"", kFormat, "\""));
  }
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != kVersion) {
    return absl::DataLossError(absl::StrCat(path, ": version ", j.contains("version") ? j["version"].dump() : "missing",
                                            ", expected ", kVersion));
  }
  if (!j.contains("adam_step") || !j["adam_step"].is_number_integer() || j["adam_step"].get<int64_t>() < 0 ||
      !j.contains("master_weights") || !j["master_weights"].is_boolean()) {
    return absl::DataLossError(
        absl::StrCat(path, ": needs \"adam_step\" (an integer >= 0) and \"master_weights\" (true or false)"));
  }
  MOERL_ASSIGN_OR_RETURN(std::vector<at::Tensor> exp_avg, ReadHeldParts(dir + "/exp_avg", model, stats));
  MOERL_ASSIGN_OR_RETURN(std::vector<at::Tensor> exp_avg_sq, ReadHeldParts(dir + "/exp_avg_sq", model, stats));
  std::vector<at::Tensor> master;
  // Masters only where this run keeps them (a bf16 run resuming an fp32
  // one starts them from the weights).
  if (j["master_weights"].get<bool>() && !optimizer->master_weights().empty()) {
    MOERL_ASSIGN_OR_RETURN(master, ReadHeldParts(dir + "/master", model, stats));
  }
  std::vector<ParameterState> states(exp_avg.size());
  for (size_t i = 0; i < states.size(); ++i) {
    states[i].exp_avg = exp_avg[i];
    states[i].exp_avg_sq = exp_avg_sq[i];
    if (!master.empty()) states[i].master = master[i];
  }
  return Annotate(optimizer->ImportParameterStates(states, j["adam_step"].get<int64_t>()), path);
}

}  // namespace moerl
