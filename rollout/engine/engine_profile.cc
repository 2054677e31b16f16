// Generation profile: the benchmark's generation workload (bench-moe config,
// batch 8, 32-token prompts, 32 new greedy tokens), timed best-of-N, and
// optionally recorded with torch's legacy profiler as a chrome trace.
//
//   bazel build //rollout/engine:engine_profile
//   ./bazel-bin/rollout/engine/engine_profile --threads=1 --rounds=5 [--trace=/tmp/gen.trace]
#include <ATen/Parallel.h>
#include <ATen/ops/randint.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <time.h>

#include "absl/strings/numbers.h"
#include "rollout/engine/engine.h"
#include "trainer/model/model.h"

namespace moerl {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Process CPU time: on a shared machine the wall time mostly measures the
// other processes; with --threads=1 the CPU time is this run's own work.
double CpuNow() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

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
    const double start = Now(), cpu_start = CpuNow();
    auto gen = engine.Generate(prompts, sc);
    if (!gen.ok()) {
      std::cerr << gen.status() << "\n";
      return 1;
    }
    best = std::min(best, Now() - start);
    best_cpu = std::min(best_cpu, CpuNow() - cpu_start);
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
  int threads = 1, rounds = 3, batch = 8, prompt = 32, new_tokens = 32;
  std::string config = "trainer/model/configs/bench-moe.json", trace;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    std::string key = arg.substr(0, eq), value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    int v = 0;
    const bool num = absl::SimpleAtoi(value, &v);
    if (key == "--threads" && num) threads = v;
    else if (key == "--rounds" && num) rounds = v;
    else if (key == "--batch" && num) batch = v;
    else if (key == "--prompt" && num) prompt = v;
    else if (key == "--new_tokens" && num) new_tokens = v;
    else if (key == "--config") config = value;
    else if (key == "--trace") trace = value;
    else {
      std::cerr << "unknown flag " << arg << "\n";
      return 2;
    }
  }
  return moerl::Run(threads, rounds, batch, prompt, new_tokens, config, trace);
}
