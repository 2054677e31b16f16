// Wall time of one GRPO training step on 1, 2 and 4 CPU ranks (threads of
// this process over Gloo, one intra-op thread each) on the same global
// batch, and its ratio to 1 rank measured in the same run.
//
//   bazel run -c opt //trainer:step_scaling_benchmark               # d1, d2, d4, (attn:d2|ffn:e2), (attn:d4|ffn:e4)
//   bazel run -c opt //trainer:step_scaling_benchmark -- --steps 6 megatron:d2 ...
//
// The model is the tiny test MoE widened (hidden 256, 16 experts of 256, 4
// layers) so that compute, not thread start-up, dominates; the batch is 8
// groups of 4 sequences. Each layout runs `steps` steps (default 4); the
// median of steps 2.. (the first warms up) is reported. Rank 0's times;
// all ranks end a step together (the gradient all-reduce). Results:
// docs/performance.md.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/status.h"
#include "trainer/parallel/in_process_ranks.h"
#include "trainer/testing/rank_steps.h"
#include "trainer/testing/trainer_fixture.h"

namespace moerl {
namespace {

absl::StatusOr<double> MedianStepSeconds(const std::string& root, const std::string& model_dir,
                                         const std::string& layout,
                                         const std::vector<std::vector<TrainSequence>>& batches) {
  std::vector<std::string> overrides = {"actor.path=" + model_dir};
  ParallelDims dims;
  if (!layout.empty()) {
    MOERL_ASSIGN_OR_RETURN(AllocationMode mode, ParseAllocationMode("sglang:d1+" + layout));
    MOERL_ASSIGN_OR_RETURN(dims, TrainingDims(mode));
    overrides.push_back("+allocation_mode=sglang:d1+" + layout);
  }
  const TrainerSettings s = TestTrainerSettings(root, "scaling", overrides, /*max_tokens_per_mb=*/100000);
  std::vector<double> seconds;
  RankStepsOptions options;
  options.gather_gradients = options.gather_weights = false;
  auto body = [&](const ParallelState& state) -> absl::Status {
    MOERL_ASSIGN_OR_RETURN(RankStepsResult r, RunRankSteps(s, state, batches, options));
    if (state.rank() == 0) seconds = r.step_seconds;
    return absl::OkStatus();
  };
  if (layout.empty()) {
    MOERL_RETURN_IF_ERROR(body(ParallelState::SingleProcess()));
  } else {
    MOERL_RETURN_IF_ERROR(RunInProcessRanks(dims, body));
  }
  std::vector<double> timed(seconds.begin() + (seconds.size() > 1 ? 1 : 0), seconds.end());
  std::sort(timed.begin(), timed.end());
  return timed[timed.size() / 2];
}

int Main(int argc, char** argv) {
  if (std::getenv("TEST_TMPDIR") == nullptr) setenv("TEST_TMPDIR", "/tmp", 0);
  int steps = 4;
  std::vector<std::string> layouts;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--steps" && i + 1 < argc) {
      if (!absl::SimpleAtoi(argv[++i], &steps) || steps < 1) {
        std::fprintf(stderr, "--steps wants a positive integer, got '%s'\n", argv[i]);
        return 2;
      }
    } else {
      layouts.push_back(arg);
    }
  }
  if (layouts.empty()) {
    layouts = {"megatron:d2", "megatron:d4", "megatron:(attn:d2|ffn:e2)", "megatron:(attn:d4|ffn:e4)"};
  }
  const std::string root = FreshTestDir("step_scaling_benchmark");
  const std::string model_dir = root + "/model";
  if (absl::Status s = WriteTinyMoe(model_dir, 4, 5, {{"hidden_size", 256},
                                                        {"intermediate_size", 512},
                                                        {"moe_intermediate_size", 256},
                                                        {"num_local_experts", 16},
                                                        {"head_dim", 64}});
      !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  WriteTestBatches(root + "/batches", steps, 8, 41);
  auto batches = ReadBatchFiles(root + "/batches");
  if (!batches.ok()) {
    std::fprintf(stderr, "%s\n", batches.status().ToString().c_str());
    return 1;
  }
  auto one = MedianStepSeconds(root, model_dir, "", *batches);
  if (!one.ok()) {
    std::fprintf(stderr, "one process: %s\n", one.status().ToString().c_str());
    return 1;
  }
  std::printf("%-30s %6s %10s %10s\n", "layout", "ranks", "step (s)", "vs 1 rank");
  std::printf("%-30s %6d %10.3f %10.3f\n", "one process", 1, *one, 1.0);
  for (const std::string& layout : layouts) {
    auto t = MedianStepSeconds(root, model_dir, layout, *batches);
    if (!t.ok()) {
      std::printf("%-30s %s\n", layout.c_str(), t.status().ToString().c_str());
      continue;
    }
    const ParallelDims dims = *TrainingDims(*ParseAllocationMode("sglang:d1+" + layout));
    std::printf("%-30s %6d %10.3f %10.3f\n", layout.c_str(), dims.WorldSize(), *t, *t / *one);
  }
  return 0;
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) { return moerl::Main(argc, argv); }
