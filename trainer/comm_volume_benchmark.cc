// Bytes communicated by one GRPO training step under each layout, measured
// by the process groups' counters (process_groups.h), next to the
// allocation planner's estimate (tools/alloc_plan/estimate.h CommVolume) for
// the same layout, model and tokens, and their ratio.
//
//   bazel run //trainer:comm_volume_benchmark                  # the layouts below
//   bazel run //trainer:comm_volume_benchmark -- 'megatron:(attn:t2|ffn:e2)' ...
//
// The step is the planner's model of one: one forward and backward per data
// shard (ppo_n_minibatches=1, one micro-batch, no proximal recompute),
// then the gradient reduction and AdamW, in float32 (the planner is asked
// for 4-byte activations and gradients). A second line per layout gives the
// step as the tests configure GRPO (recompute_logprob and two minibatches)
// and the gathering of the whole model for publication, which the planner
// does not count. Per kind: the mean over ranks of the bytes each rank
// sent (all ranks of a layout do the same work except for routing).
// Results and what the differences are: docs/parallel.md, "Communication
// volume".
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/status.h"
#include "tools/alloc_plan/estimate.h"
#include "trainer/parallel/in_process_ranks.h"
#include "trainer/testing/rank_steps.h"
#include "trainer/testing/trainer_fixture.h"

namespace moerl {
namespace {

// The planner's kinds, from the group a collective ran on.
std::string PlannerKind(RankGroupKind kind, CommOp op) {
  switch (kind) {
    case RankGroupKind::kTensor:
    case RankGroupKind::kExpertTensor: return "tp";
    case RankGroupKind::kContext:
    case RankGroupKind::kTensorContext: return "cp";
    case RankGroupKind::kExpert:
    case RankGroupKind::kExpertTensorExpert: return "ep";
    case RankGroupKind::kPipeline: return op == CommOp::kSend ? "pp" : "other";
    case RankGroupKind::kData:
    case RankGroupKind::kDataContext:
    case RankGroupKind::kTensorDataContext:
    case RankGroupKind::kExpertData:
    case RankGroupKind::kEmbedding: return "dp";
    default: return "other";
  }
}

struct Measured {
  std::map<std::string, double> by_kind;                // planner kind -> mean bytes per rank
  std::map<std::string, std::pair<double, double>> detail;  // "group op" -> mean bytes, calls per rank
  double publish = 0;
};

Measured Mean(const std::vector<std::map<RankGroupKind, CommCounts>>& per_rank,
              const std::vector<std::map<RankGroupKind, CommCounts>>& publish) {
  Measured m;
  const double n = static_cast<double>(per_rank.size());
  for (const auto& counts : per_rank) {
    for (const auto& [kind, c] : counts) {
      for (int i = 0; i < kNumCommOps; ++i) {
        const CommOp op = static_cast<CommOp>(i);
        if (c.calls[i] == 0 || op == CommOp::kRecv) continue;
        m.by_kind[PlannerKind(kind, op)] += c.bytes[i] / n;
        auto& d = m.detail[absl::StrFormat("%s %s", RankGroupName(kind), CommOpName(op))];
        d.first += c.bytes[i] / n;
        d.second += c.calls[i] / n;
      }
    }
  }
  for (const auto& counts : publish) {
    for (const auto& [kind, c] : counts) m.publish += c.sent() / n;
  }
  return m;
}

absl::StatusOr<Measured> Measure(const std::string& root, const std::string& layout, const std::string& model_dir,
                                 const std::vector<TrainSequence>& batch, bool planner_step) {
  MOERL_ASSIGN_OR_RETURN(AllocationMode mode, ParseAllocationMode("sglang:d1+" + layout));
  MOERL_ASSIGN_OR_RETURN(ParallelDims dims, TrainingDims(mode));
  std::vector<std::string> overrides = {"actor.path=" + model_dir, "+allocation_mode=sglang:d1+" + layout};
  if (planner_step) {
    for (const char* o : {"actor.ppo_n_minibatches=1", "actor.recompute_logprob=false",
                          "actor.use_decoupled_loss=false"}) {
      overrides.push_back(o);
    }
  }
  const TrainerSettings s = TestTrainerSettings(root, "comm", overrides, /*max_tokens_per_mb=*/100000);
  std::vector<std::map<RankGroupKind, CommCounts>> step(dims.WorldSize()), publish(dims.WorldSize());
  MOERL_RETURN_IF_ERROR(RunInProcessRanks(dims, [&](const ParallelState& state) -> absl::Status {
    RankStepsOptions options;
    options.gather_gradients = false;
    MOERL_ASSIGN_OR_RETURN(RankStepsResult r, RunRankSteps(s, state, {batch}, options));
    step[state.rank()] = r.step_comm[0];
    publish[state.rank()] = r.publish_comm;
    return absl::OkStatus();
  }));
  return Mean(step, publish);
}

int Main(int argc, char** argv) {
  if (std::getenv("TEST_TMPDIR") == nullptr) setenv("TEST_TMPDIR", "/tmp", 0);
  std::vector<std::string> layouts;
  for (int i = 1; i < argc; ++i) layouts.push_back(argv[i]);
  if (layouts.empty()) {
    layouts = {"megatron:d2", "megatron:(attn:d2|ffn:e2)", "megatron:d1t2", "megatron:(attn:t2|ffn:e2)",
               "megatron:(attn:t2|ffn:t2)", "megatron:(attn:d2t2|ffn:d1t2e2)", "megatron:d4",
               "megatron:(attn:d4|ffn:e4)"};
  }
  const std::string root = FreshTestDir("comm_volume_benchmark");
  const std::string model_dir = root + "/model";
  if (absl::Status s = WriteTinyMoe(model_dir, 4, 5); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  WriteTestBatches(root + "/batches", 1, 8, 31);
  auto batches = ReadBatchFiles(root + "/batches");
  if (!batches.ok()) {
    std::fprintf(stderr, "%s\n", batches.status().ToString().c_str());
    return 1;
  }
  const std::vector<TrainSequence>& batch = (*batches)[0];
  int64_t tokens = 0;
  for (const TrainSequence& q : batch) tokens += static_cast<int64_t>(q.tokens.size());
  auto config = ModelConfig::FromFile(model_dir + "/config.json");
  std::printf("model: %s (4 layers, 1 dense), batch: %zu sequences, %lld tokens; bytes sent per rank and step\n",
              model_dir.c_str(), batch.size(), static_cast<long long>(tokens));
  std::printf("%-34s %-5s %12s %12s %7s\n", "layout", "kind", "measured", "planner", "ratio");
  for (const std::string& layout : layouts) {
    auto planner_step = Measure(root, layout, model_dir, batch, true);
    auto grpo_step = Measure(root, layout, model_dir, batch, false);
    if (!planner_step.ok() || !grpo_step.ok()) {
      std::printf("%-34s %s\n", layout.c_str(),
                  (planner_step.ok() ? grpo_step.status() : planner_step.status()).ToString().c_str());
      continue;
    }
    const ParallelDims dims = *TrainingDims(*ParseAllocationMode("sglang:d1+" + layout));  // Measure parsed it
    PlanOptions plan;
    plan.micro_batch_tokens = (tokens + dims.dp - 1) / dims.dp;  // one micro-batch per shard
    plan.tokens_per_step = tokens;
    plan.comm_element_bytes = 4;
    const Backend backend = layout.rfind("fsdp", 0) == 0 ? Backend::kFsdp : Backend::kMegatron;
    const CommVolume est = EstimateTraining(*config, dims, backend, plan).comm;
    const std::map<std::string, double> planned = {
        {"tp", est.tp}, {"cp", est.cp}, {"ep", est.ep}, {"pp", est.pp}, {"dp", est.dp}};
    for (const char* kind : {"tp", "cp", "ep", "pp", "dp", "other"}) {
      const double m = planner_step->by_kind.count(kind) ? planner_step->by_kind.at(kind) : 0;
      const double p = planned.count(kind) ? planned.at(kind) : 0;
      if (m == 0 && p == 0) continue;
      std::printf("%-34s %-5s %12.0f %12.0f %7s\n", layout.c_str(), kind, m, p,
                  p > 0 ? absl::StrFormat("%.3f", m / p).c_str() : "-");
    }
    double grpo_total = 0;
    for (const auto& [kind, b] : grpo_step->by_kind) grpo_total += b;
    std::printf("%-34s GRPO step as tested (recompute + 2 minibatches) %.0f; publication gather %.0f\n",
                layout.c_str(), grpo_total, planner_step->publish);
    for (const auto& [what, d] : planner_step->detail) {
      std::printf("    %-28s %12.0f bytes %6.1f calls\n", what.c_str(), d.first, d.second);
    }
  }
  return 0;
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) { return moerl::Main(argc, argv); }
