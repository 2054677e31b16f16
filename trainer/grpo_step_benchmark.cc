// The trainer's whole GRPO training step (RunTrainStep with GrpoObjective:
// advantages, micro-batch packing, policy forward, AReaL's PPO loss,
// backward, clipping, AdamW) in tokens/s, against the same step in Python
// (tools/trainer/bench_grpo_step.py: transformers' Qwen3MoeForCausalLM,
// AReaL's gather_logprobs_entropy + ppo_actor_loss_fn, torch.optim.AdamW)
// and against the machine's fp32 GEMM rate, all in the same run: moerl and
// the peer alternate rounds with the same weights, batch and thread count,
// and the best round of each is kept.
//
//   bazel run //trainer:grpo_step_benchmark -- --threads=1
//   (flags: --threads --config --groups --group_size --prompt --completion
//    --max_tokens_per_mb --steps --rounds --skip_python --areal_path
//    --device --dtype
//    --profile=trace.json: one step's chrome trace, then exit; summarise it
//    with tools/model/trace_summary.py)
//
// On a GPU (--config=cuda build, --device=cuda, e.g. --dtype=bfloat16) the
// step runs on cuda:0, the reference is the GPU's GEMM rate in the model
// dtype (n=8192), the peak of the caching allocator is reported, and the
// Python peer (a host-only script) is skipped. The last line is a summary
// for scripts: `summary: device=... dtype=... tokens_per_s=... step_s=...
// peak_mem_gib=...`.
//
// FLOPs of a step: 3x the forward's matmuls (trainer/model/flop_count.h),
// the LM head over the completion rows only (the rows that carry a loss;
// moerl computes only those, transformers all rows). Prepare's work, AdamW
// and elementwise ops are timed but not counted.
#include <ATen/Parallel.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/randn.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/bench_clock.h"
#include "common/status.h"
#include "nlohmann/json.hpp"
#include "trainer/device.h"
#include "trainer/grpo_objective.h"
#include "trainer/model/flop_count.h"
#include "trainer/model/hf_weights.h"
#include "trainer/optimizer.h"
#include "trainer/train_step.h"

ABSL_FLAG(int, threads, 1, "torch intra-op threads, the same for both sides");
ABSL_FLAG(std::string, config, "trainer/model/configs/bench-moe.json", "model config.json");
ABSL_FLAG(int, groups, 4, "prompts per batch");
ABSL_FLAG(int, group_size, 4, "completions per prompt");
ABSL_FLAG(int, prompt, 64, "tokens per prompt");
ABSL_FLAG(int, completion, 192, "tokens per completion");
ABSL_FLAG(int, max_tokens_per_mb, 0, "actor.mb_spec.max_tokens_per_mb; 0: one micro-batch");
ABSL_FLAG(int, steps, 2, "timed steps per round");
ABSL_FLAG(int, rounds, 2, "alternating moerl / Python rounds; the best of each is kept");
ABSL_FLAG(bool, skip_python, false, "do not run the Python peer");
ABSL_FLAG(std::string, areal_path, "", "folder holding AReaL (default $HOME/.cache/moerl/areal-oracle)");
ABSL_FLAG(std::string, profile, "", "if set, write one step's chrome trace here and exit");
ABSL_FLAG(std::string, device, "cpu", "trainer.device: cpu, cuda or auto");
ABSL_FLAG(std::string, dtype, "float32", "actor.dtype: float32 or bfloat16");

namespace moerl {
namespace {

constexpr double kLr = 1e-5, kClip = 1.0, kEpsClip = 0.2;

std::string Shell(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), p)) out += buf;
  pclose(p);
  return out;
}

// GRPO-shaped sequences: `groups` prompts, each with `group_size`
// completions; behaviour log-probs near those of a random model
// (-log V +- 0.3, so some ratios clip); rewards 0/1 alternating.
std::vector<TrainSequence> MakeBatch(const ModelConfig& c, int groups, int group_size, int prompt,
                                     int completion) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> noise(-0.3f, 0.3f);
  const float base = -std::log(static_cast<float>(c.vocab_size));
  std::vector<TrainSequence> seqs;
  for (int g = 0; g < groups; ++g) {
    std::vector<int64_t> p;
    for (int t = 0; t < prompt; ++t) p.push_back(static_cast<int64_t>(rng() % c.vocab_size));
    for (int s = 0; s < group_size; ++s) {
      TrainSequence seq;
      seq.tokens = p;
      seq.prompt_len = prompt;
      for (int t = 0; t < completion; ++t) {
        seq.tokens.push_back(static_cast<int64_t>(rng() % c.vocab_size));
        seq.behave_logp.push_back(base + noise(rng));
        seq.versions.push_back(0);
      }
      seq.reward = (s + g) % 2;
      seq.group_id = absl::StrCat("g", g);
      seqs.push_back(std::move(seq));
    }
  }
  return seqs;
}

// The GPU's matrix-product rate in `dtype`: n x n x n, best of 10 after 3
// warm-ups.
double MeasureDeviceGemmFlops(const c10::Device& device, at::ScalarType dtype, int64_t n) {
  const auto options = at::TensorOptions().dtype(dtype).device(device);
  const at::Tensor a = at::randn({n, n}, options), b = at::randn({n, n}, options);
  at::Tensor c = at::mm(a, b);
  for (int i = 0; i < 3; ++i) at::mm_out(c, a, b);
  double best = 0;
  for (int i = 0; i < 10; ++i) {
    SynchronizeDevice(device);
    const double start = WallSeconds();
    at::mm_out(c, a, b);
    SynchronizeDevice(device);
    best = std::max(best, 2.0 * n * n * n / (WallSeconds() - start));
  }
  return best;
}

absl::Status WritePeerInput(const std::string& dir, Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                            int group_size, int max_tokens_per_mb) {
  MOERL_RETURN_IF_ERROR(SaveHfCheckpoint(model, dir, at::kFloat, uint64_t{5} << 30));
  nlohmann::json j = {{"group_size", group_size}, {"lr", kLr}, {"gradient_clipping", kClip},
                      {"eps_clip", kEpsClip}};
  j["max_tokens_per_mb"] = max_tokens_per_mb > 0 ? nlohmann::json(max_tokens_per_mb) : nlohmann::json();
  for (const TrainSequence& s : seqs) {
    j["seqs"].push_back(
        {{"tokens", s.tokens}, {"prompt_len", s.prompt_len}, {"behave", s.behave_logp}, {"reward", s.reward}});
  }
  std::ofstream(dir + "/batch.json") << j.dump();
  return absl::OkStatus();
}

int Run() {
  const int threads = absl::GetFlag(FLAGS_threads), steps = absl::GetFlag(FLAGS_steps);
  const int rounds = absl::GetFlag(FLAGS_rounds), group_size = absl::GetFlag(FLAGS_group_size);
  const int max_tokens_per_mb = absl::GetFlag(FLAGS_max_tokens_per_mb);
  const std::string config_path = absl::GetFlag(FLAGS_config);
  at::set_num_threads(threads);
  auto config = ModelConfig::FromFile(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "--config: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (absl::GetFlag(FLAGS_groups) < 1 || group_size < 2 || absl::GetFlag(FLAGS_prompt) < 1 ||
      absl::GetFlag(FLAGS_completion) < 1 || steps < 1 || rounds < 1) {
    std::fprintf(stderr, "need --groups >= 1, --group_size >= 2, --prompt/--completion/--steps/--rounds >= 1\n");
    return 1;
  }
  auto device = TrainerDevice(absl::GetFlag(FLAGS_device), 0);
  if (!device.ok()) {
    std::fprintf(stderr, "--device: %s\n", std::string(device.status().message()).c_str());
    return 1;
  }
  const std::string dtype_name = absl::GetFlag(FLAGS_dtype);
  if (dtype_name != "float32" && dtype_name != "bfloat16") {
    std::fprintf(stderr, "--dtype: \"%s\" is not float32 or bfloat16\n", dtype_name.c_str());
    return 1;
  }
  const at::ScalarType dtype = dtype_name == "bfloat16" ? at::kBFloat16 : at::kFloat;
  const bool on_gpu = device->is_cuda();
  auto model = std::make_shared<Qwen3Model>(*config);
  model->InitializeWeights(0);
  if (dtype != at::kFloat) model->to(dtype);
  if (on_gpu) model->to(*device);
  const std::vector<TrainSequence> seqs = MakeBatch(*config, absl::GetFlag(FLAGS_groups), group_size,
                                                    absl::GetFlag(FLAGS_prompt), absl::GetFlag(FLAGS_completion));
  std::vector<int64_t> lengths;
  int64_t tokens = 0, completion_tokens = 0;
  for (const TrainSequence& s : seqs) {
    lengths.push_back(s.Length());
    tokens += s.Length();
    completion_tokens += s.OutputLen();
  }
  const double step_flops = 3 * ForwardMatmulFlops(*config, lengths, completion_tokens);

  const std::string dir = absl::StrCat(std::filesystem::temp_directory_path().string(), "/moerl_grpo_bench_", ::getpid());
  // The peer is a host-only fp32 script.
  const bool python = !absl::GetFlag(FLAGS_skip_python) && absl::GetFlag(FLAGS_profile).empty() && !on_gpu &&
                      dtype == at::kFloat;
  if (python) {
    const absl::Status written = WritePeerInput(dir, *model, seqs, group_size, max_tokens_per_mb);
    if (!written.ok()) {
      std::fprintf(stderr, "cannot write the peer's input: %s\n", std::string(written.message()).c_str());
      return 1;
    }
  }

  GrpoOptions options;
  NormConfig group_norm;
  group_norm.mean_level = group_norm.std_level = "group";
  group_norm.group_size = group_size;
  options.advantages.reward_norm = group_norm;
  options.loss.eps_clip = kEpsClip;
  OptimizerSettings opt_settings;
  opt_settings.lr = kLr;
  opt_settings.gradient_clipping = kClip;
  opt_settings.warmup_steps_proportion = 0;
  TrainOptimizer optimizer(model->parameters(), opt_settings, LrSchedule{});
  TrainStepOptions step_options;
  if (max_tokens_per_mb > 0) step_options.max_tokens_per_mb = max_tokens_per_mb;
  int64_t step_index = 0;
  double last_grad_norm = 0;
  auto step = [&]() -> bool {
    GrpoObjective objective(options, step_index);
    StatsRecorder stats;
    const absl::Status s = RunTrainStep(*model, optimizer, objective, seqs, step_options, step_index++, &stats);
    if (!s.ok()) std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    last_grad_norm = stats.Value("ppo_actor/update/grad_norm");
    return s.ok();
  };
  if (!step()) return 1;  // warm-up, from the weights the peer loads
  const double first_grad_norm = last_grad_norm;
  if (!absl::GetFlag(FLAGS_profile).empty()) {
    {
      torch::autograd::profiler::RecordProfile record(absl::GetFlag(FLAGS_profile));
      if (!step()) return 1;
    }
    std::printf("wrote a chrome trace of one GRPO step to %s\n", absl::GetFlag(FLAGS_profile).c_str());
    return 0;
  }

  std::string areal = absl::GetFlag(FLAGS_areal_path);
  if (areal.empty()) areal = absl::StrCat(std::getenv("HOME") ? std::getenv("HOME") : "", "/.cache/moerl/areal-oracle");
  const std::string peer_cmd = absl::StrCat("PYTHONPATH=", areal, " python3 tools/trainer/bench_grpo_step.py --dir ",
                                            dir, " --threads ", threads, " --steps ", steps, " 2>&1");
  double gemm = 0, gemm_cpu = 0, tps = 0, cpu_tps = 0, peer_tps = 0, peer_cpu_tps = 0, peer_norm = 0;
  std::string peer;
  ResetPeakDeviceBytes(*device);
  for (int round = 0; round < rounds; ++round) {
    if (on_gpu) {
      gemm = std::max(gemm, MeasureDeviceGemmFlops(*device, dtype, 8192));
    } else {
      gemm = std::max(gemm, MeasureGemmFlops(2048, &gemm_cpu));
    }
    SynchronizeDevice(*device);
    const double start = WallSeconds(), cpu_start = ProcessCpuSeconds();
    for (int i = 0; i < steps; ++i) {
      if (!step()) return 1;
    }
    SynchronizeDevice(*device);
    tps = std::max(tps, static_cast<double>(tokens) * steps / (WallSeconds() - start));
    cpu_tps = std::max(cpu_tps, static_cast<double>(tokens) * steps / (ProcessCpuSeconds() - cpu_start));
    if (!python) continue;
    peer = Shell(peer_cmd);
    const size_t at = peer.rfind("{\"tokens_per_s\"");
    if (at == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(peer.substr(at), nullptr, false);
    if (j.is_discarded()) continue;
    peer_tps = std::max(peer_tps, j.value("tokens_per_s", 0.0));
    peer_cpu_tps = std::max(peer_cpu_tps, j.value("tokens_per_cpu_s", 0.0));
    peer_norm = j.value("first_grad_norm", 0.0);
  }
  if (python) std::filesystem::remove_all(dir);

  std::printf("device=%s dtype=%s ", DeviceName(*device).c_str(), dtype_name.c_str());
  std::printf("threads=%d config=%s batch=%zu sequences (%d groups x %d) of %d prompt + %d completion tokens, "
              "%d micro-batch token cap, best of %d alternating rounds of %d steps\n",
              threads, config_path.c_str(), seqs.size(), absl::GetFlag(FLAGS_groups), group_size,
              absl::GetFlag(FLAGS_prompt), absl::GetFlag(FLAGS_completion), max_tokens_per_mb, rounds, steps);
  std::printf("step matmul FLOPs (3x forward, LM head on %lld completion rows): %.1f GFLOP\n",
              static_cast<long long>(completion_tokens), step_flops / 1e9);
  const double flops = step_flops / static_cast<double>(tokens) * tps;
  const double cpu_flops = step_flops / static_cast<double>(tokens) * cpu_tps;
  const double peak_gib = static_cast<double>(PeakDeviceBytes(*device)) / (1 << 30);
  if (on_gpu) {
    std::printf("gemm %s n=8192 on GPU:  %8.1f GFLOP/s\n", dtype_name.c_str(), gemm / 1e9);
    std::printf("moerl GRPO step:          %8.1f tokens/s  %8.1f GFLOP/s  (%.0f%% of GEMM)  %.4f s/step"
                "  peak %.2f GiB\n",
                tps, flops / 1e9, 100 * flops / gemm, static_cast<double>(tokens) / tps, peak_gib);
  } else {
    std::printf("gemm fp32 n=2048:         %8.1f GFLOP/s  (%.1f per CPU-s)\n", gemm / 1e9, gemm_cpu / 1e9);
    std::printf("moerl GRPO step:          %8.1f tokens/s  %8.1f GFLOP/s  (%.0f%% of GEMM)\n", tps, flops / 1e9,
                100 * flops / gemm);
    std::printf("  per CPU-second:         %8.1f tokens/s  %8.1f GFLOP/s  (%.0f%% of GEMM per CPU-s)\n", cpu_tps,
                cpu_flops / 1e9, 100 * cpu_flops / gemm_cpu);
  }
  std::printf("summary: device=%s dtype=%s tokens_per_s=%.1f step_s=%.4f gemm_share=%.3f peak_mem_gib=%.3f "
              "first_grad_norm=%.6g\n",
              DeviceName(*device).c_str(), dtype_name.c_str(), tps, static_cast<double>(tokens) / tps,
              flops / gemm, peak_gib, first_grad_norm);
  if (!std::isfinite(first_grad_norm)) return 1;
  if (!python) return 0;
  if (peer_tps <= 0) {
    std::printf("Python peer failed (python3 with torch, transformers and AReaL on PYTHONPATH):\n%s\n", peer.c_str());
    return 1;
  }
  const double peer_flops = step_flops / static_cast<double>(tokens) * peer_tps;
  std::printf("transformers + AReaL:     %8.1f tokens/s  %8.1f GFLOP/s  (%.0f%% of GEMM)"
              "  -> moerl/peer = %.2fx\n",
              peer_tps, peer_flops / 1e9, 100 * peer_flops / gemm, tps / peer_tps);
  std::printf("  per CPU-second:         %8.1f tokens/s  -> moerl/peer = %.2fx\n", peer_cpu_tps,
              cpu_tps / peer_cpu_tps);
  const double rel = std::abs(first_grad_norm - peer_norm) / std::max(peer_norm, 1e-12);
  std::printf("first step's gradient norm (same weights and batch): moerl %.6g, peer %.6g (relative diff %.1e)\n",
              first_grad_norm, peer_norm, rel);
  return rel < 1e-3 ? 0 : 1;
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // bazel run starts in the runfiles tree; the Python peer and the configs
  // are addressed from the workspace root.
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY")) {
    if (chdir(ws) != 0) return 1;
  }
  return moerl::Run();
}
