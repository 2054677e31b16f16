// The planner's two output forms: a readable table and JSON.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tools/alloc_plan/plan.h"

namespace moerl {
namespace {

std::string Gib(double bytes) { return absl::StrFormat("%.2f", bytes / kGiB); }
std::string Billions(double n) { return absl::StrFormat("%.2f B", n / 1e9); }

std::string LayersList(const TrainingEstimate& e) {
  std::vector<int64_t> layers;
  for (const StageEstimate& s : e.stages) layers.push_back(s.layers);
  return absl::StrJoin(layers, " ");
}

}  // namespace

std::string FormatPlanTable(const Plan& p) {
  std::string out;
  const ModelConfig& m = p.model;
  absl::StrAppendFormat(&out, "allocation_mode  %s\n", p.allocation_mode);
  absl::StrAppendFormat(&out, "GPUs             %d needed (%d nodes of %d); cluster has %d: %s\n",
                        p.total_gpus, p.nodes_needed, p.gpus_per_node, p.cluster_gpus,
                        p.fits_cluster ? "fits" : "DOES NOT FIT");
  absl::StrAppendFormat(&out, "model            %s (%s)\n", p.model_path,
                        m.model_type.empty() ? "?" : m.model_type);
  absl::StrAppendFormat(&out,
                        "                 %s parameters, %s active per token; %d layers, hidden "
                        "%d, %d heads / %d KV heads, %d experts (top-%d)\n",
                        Billions(p.params.total), Billions(p.params.active), m.num_hidden_layers,
                        m.hidden_size, m.num_attention_heads, m.num_key_value_heads, m.num_experts,
                        m.num_experts_per_tok);
  for (const InferencePlan& i : p.inference) {
    absl::StrAppendFormat(&out,
                          "\ninference        %s: %d servers x %d GPUs (tp=%d pp=%d); bf16 weights "
                          "%s GiB per GPU\n",
                          ToString(i.allocation), i.servers, i.gpus_per_server, i.allocation.dims.tp,
                          i.allocation.dims.pp, Gib(i.weight_bytes_per_gpu));
  }
  for (const TrainingPlan& t : p.training) {
    const TrainingEstimate& e = t.estimate;
    absl::StrAppendFormat(&out, "\ntraining         %s%s: %s\n", ToString(t.allocation),
                          t.allocation.colocated() ? " (colocated)" : "", DebugString(e.dims));
    absl::StrAppendFormat(&out, "  layers per stage     %s\n", LayersList(e));
    absl::StrAppendFormat(&out, "  experts per rank     %d (ep=%d, etp=%d)\n", e.experts_per_rank,
                          e.dims.ep, e.dims.etp);
    absl::StrAppendFormat(&out,
                          "  optimizer shards     dense over dp*cp=%d, experts over edp=%d\n",
                          e.dense_shard_group, e.expert_shard_group);
    absl::StrAppendFormat(&out,
                          "  micro-batches        %d per step of %d tokens per DP rank (%d tokens "
                          "per step)\n",
                          e.micro_batches_per_step, p.options.micro_batch_tokens,
                          p.options.tokens_per_step);
    absl::StrAppendFormat(&out,
                          "  memory per GPU (GiB)  stage  dense_params  expert_params  params  "
                          "grads  optimizer  static  activations  total\n");
    for (const StageEstimate& s : e.stages) {
      if (e.stages.size() > 8 && s.stage >= 2 && s.stage + 2 < static_cast<int>(e.stages.size())) {
        if (s.stage == 2) out += "                        ...\n";
        continue;
      }
      absl::StrAppendFormat(&out, "                        %5d  %12s  %13s  %6s  %5s  %9s  %6s  %11s  %5s\n",
                            s.stage, Billions(s.dense_params), Billions(s.expert_params),
                            Gib(s.param_bytes), Gib(s.grad_bytes), Gib(s.optimizer_bytes),
                            Gib(s.static_bytes()), Gib(s.activation_bytes), Gib(s.total_bytes()));
    }
    absl::StrAppendFormat(&out, "  worst stage          %d: %s GiB of %s GiB per GPU\n",
                          e.worst_stage.stage, Gib(e.worst_stage.total_bytes()),
                          Gib(p.gpu_memory_bytes));
    absl::StrAppendFormat(&out,
                          "  communication (GiB per GPU per step)  tp %s  cp %s  ep all-to-all %s  "
                          "pp p2p %s  dp rs+ag %s  total %s\n",
                          Gib(e.comm.tp), Gib(e.comm.cp), Gib(e.comm.ep), Gib(e.comm.pp),
                          Gib(e.comm.dp), Gib(e.comm.total()));
    out += "  rank groups (order tp-cp-ep-dp-pp)\n";
    for (const auto& [kind, groups] : t.rank_groups) {
      absl::StrAppendFormat(&out, "    %-10s %s\n", kind, groups);
    }
  }
  if (p.problems.empty()) {
    out += "\nproblems         none\n";
  } else {
    out += "\nproblems\n";
    for (const std::string& problem : p.problems) absl::StrAppend(&out, "  - ", problem, "\n");
  }
  return out;
}

nlohmann::json PlanToJson(const Plan& p) {
  using Json = nlohmann::json;
  Json j;
  j["allocation_mode"] = p.allocation_mode;
  j["gpus"] = {{"needed", p.total_gpus},
               {"nodes_needed", p.nodes_needed},
               {"cluster", p.cluster_gpus},
               {"gpus_per_node", p.gpus_per_node},
               {"fits", p.fits_cluster}};
  j["gpu_memory_gib"] = p.gpu_memory_bytes / kGiB;
  j["model"] = {{"path", p.model_path},
                {"model_type", p.model.model_type},
                {"parameters", p.params.total},
                {"active_parameters", p.params.active},
                {"expert_parameters", p.params.experts_total},
                {"layers", p.model.num_hidden_layers},
                {"experts", p.model.num_experts}};
  j["inference"] = Json::array();
  for (const InferencePlan& i : p.inference) {
    j["inference"].push_back({{"allocation", ToString(i.allocation)},
                              {"servers", i.servers},
                              {"gpus_per_server", i.gpus_per_server},
                              {"weight_gib_per_gpu", i.weight_bytes_per_gpu / kGiB}});
  }
  j["training"] = Json::array();
  for (const TrainingPlan& t : p.training) {
    const TrainingEstimate& e = t.estimate;
    const ParallelDims& d = e.dims;
    Json stages = Json::array();
    for (const StageEstimate& s : e.stages) {
      stages.push_back({{"stage", s.stage},
                        {"layers", s.layers},
                        {"dense_params", s.dense_params},
                        {"expert_params", s.expert_params},
                        {"param_gib", s.param_bytes / kGiB},
                        {"grad_gib", s.grad_bytes / kGiB},
                        {"optimizer_gib", s.optimizer_bytes / kGiB},
                        {"static_gib", s.static_bytes() / kGiB},
                        {"activation_gib", s.activation_bytes / kGiB},
                        {"total_gib", s.total_bytes() / kGiB}});
    }
    Json groups = Json::object();
    for (const auto& [kind, text] : t.rank_groups) groups[kind] = text;
    j["training"].push_back(
        {{"allocation", ToString(t.allocation)},
         {"dims",
          {{"dp", d.dp}, {"tp", d.tp}, {"pp", d.pp}, {"cp", d.cp}, {"ep", d.ep}, {"etp", d.etp},
           {"edp", d.ExpertDataParallel()}, {"world", d.WorldSize()}}},
         {"experts_per_rank", e.experts_per_rank},
         {"dense_shard_group", e.dense_shard_group},
         {"expert_shard_group", e.expert_shard_group},
         {"micro_batches_per_step", e.micro_batches_per_step},
         {"stages", stages},
         {"worst_stage", e.worst_stage.stage},
         {"worst_total_gib", e.worst_stage.total_bytes() / kGiB},
         {"comm_gib_per_step",
          {{"tp", e.comm.tp / kGiB}, {"cp", e.comm.cp / kGiB}, {"ep", e.comm.ep / kGiB},
           {"pp", e.comm.pp / kGiB}, {"dp", e.comm.dp / kGiB}, {"total", e.comm.total() / kGiB}}},
         {"rank_groups", groups}});
  }
  j["problems"] = p.problems;
  return j;
}

}  // namespace moerl
