// Generation profile: the benchmark's generation workload (bench-moe config,
// batch 8, 32-token prompts, 32 new greedy tokens), timed best-of-N, and
// optionally recorded with torch's legacy profiler as a chrome trace.
//
//   bazel build //rollout/engine:engine_profile
//   ./bazel-bin/rollout/engine/engine_profile --threads=1 --rounds=5 [--trace=/tmp/gen.trace]
#include <ATen/Parallel.h>
#include <ATen/ops/randint.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/bench_clock.h"
#include "rollout/engine/engine.h"
#include "trainer/model/model.h"

ABSL_FLAG(int, threads, 1, "torch intra-op threads");
ABSL_FLAG(int, rounds, 3, "Generate runs; the best wall and CPU times are kept");
ABSL_FLAG(int, batch, 8, "prompts per Generate");
ABSL_FLAG(int, prompt, 32, "tokens per prompt");
ABSL_FLAG(int, new_tokens, 32, "greedy tokens generated per prompt");
ABSL_FLAG(std::string, config, "trainer/model/configs/bench-moe.json", "model config.json");
ABSL_FLAG(std::string, trace, "", "if set, write a chrome trace of one Generate here");

namespace moerl {
namespace {

int Run(int threads, int rounds, int batch, int prompt, int new_tokens, const std::string& config_path,
        const std::string& trace) {
  at::set_num_threads(threads);
  auto config = ModelConfig::FromFile(config_path);
  if (!config.ok()) {
    std::cerr << config.status() << "\n";
    return 1;
  }
  auto model = std::make_shared<Qwen3Model>(*config);
  model->InitializeWeights(0);
  GenerationEngine engine(model);
  at::Tensor pids = at::randint(config->vocab_size, {batch * prompt});
  std::vector<std::vector<int64_t>> prompts(batch);
  for (int b = 0; b < batch; ++b) {
    prompts[b].assign(pids.data_ptr<int64_t>() + b * prompt, pids.data_ptr<int64_t>() + (b + 1) * prompt);
  }
  SamplingConfig sc;
  sc.temperature = 0.0;
  sc.max_new_tokens = new_tokens;
  (void)engine.Generate(prompts, sc);  // warm-up
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < rounds; ++r) {
    const double start = WallSeconds(), cpu_start = ProcessCpuSeconds();
    auto gen = engine.Generate(prompts, sc);
    if (!gen.ok()) {
      std::cerr << gen.status() << "\n";
      return 1;
    }
    best = std::min(best, WallSeconds() - start);
    best_cpu = std::min(best_cpu, ProcessCpuSeconds() - cpu_start);
  }
  std::printf("generate batch %d prompt %d new %d threads %d: best wall %.1f ms = %.1f tokens/s; "
              "best CPU %.1f ms = %.1f tokens/s\n",
              batch, prompt, new_tokens, threads, best * 1e3, batch * new_tokens / best, best_cpu * 1e3,
              batch * new_tokens / best_cpu);
  if (!trace.empty()) {
    torch::autograd::profiler::RecordProfile guard(trace);
    (void)engine.Generate(prompts, sc);
  }
  return 0;
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return moerl::Run(absl::GetFlag(FLAGS_threads), absl::GetFlag(FLAGS_rounds), absl::GetFlag(FLAGS_batch),
                    absl::GetFlag(FLAGS_prompt), absl::GetFlag(FLAGS_new_tokens), absl::GetFlag(FLAGS_config),
                    absl::GetFlag(FLAGS_trace));
}
