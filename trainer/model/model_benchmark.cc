// Model benchmarks, with their peers measured in the same run:
//   - a large fp32 GEMM (the machine's achievable FLOP/s),
//   - a training step (forward + backward of the causal-LM loss) in tokens/s
//     and FLOP/s, against transformers' Qwen3MoeForCausalLM,
//   - batched greedy generation with the KV cache in tokens/s, against
//     transformers' generate().
// The transformers side runs tools/model/bench_transformers.py (python3 with
// torch + transformers) with the same thread count and shapes.
//
//   bazel run //trainer/model:model_benchmark -- --threads=2
//   (flags: --threads --batch --seq --steps --rounds --gen_batch --prompt --new_tokens --skip_python
//    --profile=trace.json: one training step's chrome trace, then exit;
//    summarise it with tools/model/trace_summary.py)
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/randint.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/bench_clock.h"
#include "rollout/engine/engine.h"
#include "trainer/model/flop_count.h"
#include "trainer/model/model.h"

ABSL_FLAG(int, threads, 2, "torch intra-op threads, the same for both sides");
ABSL_FLAG(int, batch, 8, "training sequences per step");
ABSL_FLAG(int, seq, 512, "tokens per training sequence");
ABSL_FLAG(int, steps, 2, "training steps per round");
ABSL_FLAG(int, gen_batch, 8, "prompts per Generate");
ABSL_FLAG(int, prompt, 32, "tokens per prompt");
ABSL_FLAG(int, new_tokens, 32, "greedy tokens generated per prompt");
ABSL_FLAG(int, rounds, 2, "alternating moerl / transformers rounds; the best of each is kept");
ABSL_FLAG(std::string, config, "trainer/model/configs/bench-moe.json", "model config.json");
ABSL_FLAG(bool, skip_python, false, "do not run the transformers peer");
ABSL_FLAG(std::string, profile, "", "if set, write one training step's chrome trace here and exit");

namespace moerl {
namespace {

struct Flags {
  int threads = 2, batch = 8, seq = 512, steps = 2, gen_batch = 8, prompt = 32, new_tokens = 32;
  int rounds = 2;  // moerl and transformers alternate; best of each is kept
  bool skip_python = false;
  std::string profile;  // non-empty: write one training step's chrome trace here and exit
  std::string config = "trainer/model/configs/bench-moe.json";
};

// Forward matmul FLOPs per token of a training sequence of length `seq`,
// the LM head over every position (trainer/model/flop_count.h says what
// is counted).
double ForwardFlopsPerToken(const ModelConfig& c, int64_t seq) {
  return ForwardMatmulFlops(c, {seq}, seq) / static_cast<double>(seq);
}

std::string PythonPeer(const Flags& f) {
  const std::string cmd = absl::StrCat(
      "python3 tools/model/bench_transformers.py --threads ", f.threads, " --config ", f.config, " --batch ",
      f.batch, " --seq ", f.seq, " --steps ", f.steps, " --gen_batch ", f.gen_batch, " --prompt ", f.prompt,
      " --new_tokens ", f.new_tokens, " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), p)) out += buf;
  pclose(p);
  return out;
}

double JsonNumber(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return 0;
  return std::atof(json.c_str() + at + key.size() + 3);
}

int Run(const Flags& f) {
  at::set_num_threads(f.threads);
  auto config = ModelConfig::FromFile(f.config);
  if (!config.ok()) {
    std::cerr << config.status() << "\n";
    return 1;
  }
  auto model = std::make_shared<Qwen3Model>(*config);
  model->InitializeWeights(0);
  double gemm_cpu = 0;
  double gemm = MeasureGemmFlops(2048, &gemm_cpu);

  // Training step.
  at::Tensor ids = at::randint(config->vocab_size, {f.batch * f.seq});
  std::vector<std::vector<int64_t>> seqs(f.batch);
  const int64_t* p = ids.data_ptr<int64_t>();
  for (int b = 0; b < f.batch; ++b) seqs[b].assign(p + b * f.seq, p + (b + 1) * f.seq);
  ModelInput in = ModelInput::Pack(seqs);
  double train_tps = 0, train_cpu_tps = 0, gen_tps = 0, hf_train = 0, hf_train_cpu = 0, hf_gen = 0;
  std::string peer;
  auto step = [&] {
    model->CausalLmLoss(in).backward();
    for (auto& param : model->parameters()) param.mutable_grad() = at::Tensor();
  };
  const double tokens = static_cast<double>(f.batch) * f.seq;
  step();  // warm-up
  if (!f.profile.empty()) {
    {
      torch::autograd::profiler::RecordProfile record(f.profile);
      step();
    }
    std::printf("wrote a chrome trace of one training step to %s\n", f.profile.c_str());
    return 0;
  }

  // Generation: greedy, fixed length (no stop ids).
  GenerationEngine engine(model);
  at::Tensor pids = at::randint(config->vocab_size, {f.gen_batch * f.prompt});
  std::vector<std::vector<int64_t>> prompts(f.gen_batch);
  for (int b = 0; b < f.gen_batch; ++b) {
    prompts[b].assign(pids.data_ptr<int64_t>() + b * f.prompt, pids.data_ptr<int64_t>() + (b + 1) * f.prompt);
  }
  SamplingConfig sc;
  sc.temperature = 0.0;
  sc.max_new_tokens = 4;
  (void)engine.Generate(prompts, sc);  // warm-up
  sc.max_new_tokens = f.new_tokens;
  for (int round = 0; round < f.rounds; ++round) {
    gemm = std::max(gemm, MeasureGemmFlops(2048, &gemm_cpu));
    double start = WallSeconds(), cpu_start = ProcessCpuSeconds();
    for (int i = 0; i < f.steps; ++i) step();
    train_tps = std::max(train_tps, tokens * f.steps / (WallSeconds() - start));
    train_cpu_tps = std::max(train_cpu_tps, tokens * f.steps / (ProcessCpuSeconds() - cpu_start));
    start = WallSeconds();
    auto gen = engine.Generate(prompts, sc);
    if (!gen.ok()) {
      std::cerr << gen.status() << "\n";
      return 1;
    }
    gen_tps = std::max(gen_tps, static_cast<double>(f.gen_batch) * f.new_tokens / (WallSeconds() - start));
    if (f.skip_python) continue;
    peer = PythonPeer(f);
    hf_train = std::max(hf_train, JsonNumber(peer, "train_tokens_per_s"));
    hf_train_cpu = std::max(hf_train_cpu, JsonNumber(peer, "train_tokens_per_cpu_s"));
    hf_gen = std::max(hf_gen, JsonNumber(peer, "generate_tokens_per_s"));
  }
  const double train_flops = 3 * ForwardFlopsPerToken(*config, f.seq) * train_tps;

  std::printf("threads=%d config=%s batch=%dx%d, best of %d alternating rounds\n", f.threads,
              f.config.c_str(), f.batch, f.seq, f.rounds);
  std::printf("gemm fp32 n=2048:          %8.1f GFLOP/s\n", gemm / 1e9);
  std::printf("moerl train step:          %8.1f tokens/s  %8.1f GFLOP/s  (%.0f%% of GEMM)\n", train_tps,
              train_flops / 1e9, 100 * train_flops / gemm);
  const double cpu_flops = 3 * ForwardFlopsPerToken(*config, f.seq) * train_cpu_tps;
  std::printf("  per CPU-second:          %8.1f tokens/s  %8.1f GFLOP/s  (%.0f%% of GEMM's %.1f per CPU-s)\n",
              train_cpu_tps, cpu_flops / 1e9, 100 * cpu_flops / gemm_cpu, gemm_cpu / 1e9);
  std::printf("moerl generate (batch %d): %8.1f tokens/s\n", f.gen_batch, gen_tps);
  if (f.skip_python) return 0;
  if (hf_train <= 0) {
    std::printf("transformers peer failed (python3 + torch + transformers needed): %s\n", peer.c_str());
    return 1;
  }
  std::printf("transformers train step:   %8.1f tokens/s  -> moerl/transformers = %.2fx\n", hf_train,
              train_tps / hf_train);
  if (hf_train_cpu > 0) {
    std::printf("  per CPU-second:          %8.1f tokens/s  -> moerl/transformers = %.2fx\n", hf_train_cpu,
                train_cpu_tps / hf_train_cpu);
  }
  std::printf("transformers generate():   %8.1f tokens/s  -> moerl/transformers = %.2fx\n", hf_gen,
              gen_tps / hf_gen);
  return 0;
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  moerl::Flags f;
  f.threads = absl::GetFlag(FLAGS_threads);
  f.batch = absl::GetFlag(FLAGS_batch);
  f.seq = absl::GetFlag(FLAGS_seq);
  f.steps = absl::GetFlag(FLAGS_steps);
  f.gen_batch = absl::GetFlag(FLAGS_gen_batch);
  f.prompt = absl::GetFlag(FLAGS_prompt);
  f.new_tokens = absl::GetFlag(FLAGS_new_tokens);
  f.rounds = absl::GetFlag(FLAGS_rounds);
  f.config = absl::GetFlag(FLAGS_config);
  f.skip_python = absl::GetFlag(FLAGS_skip_python);
  f.profile = absl::GetFlag(FLAGS_profile);
  // bazel run starts in the runfiles tree; the python script and configs are
  // addressed from the workspace root.
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY")) {
    if (chdir(ws) != 0) return 1;
  }
  return moerl::Run(f);
}
