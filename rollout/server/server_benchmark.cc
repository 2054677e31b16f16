// Server throughput: greedy /generate over HTTP at 1, 4 and 16 concurrent
// clients against the in-process engine (one prompt at a time, and all at
// once), on the bench-moe config with random weights.
//
//   bazel build //rollout/server:server_benchmark
//   ./bazel-bin/rollout/server/server_benchmark --threads=1 --requests=16 --prompt=32 --new_tokens=32
//
// Each setting sends `requests` requests in total (each client sends its
// share one after another) and reports generated tokens per wall second and
// per CPU second of the process.
#include <httplib.h>

#include <ATen/Parallel.h>
#include <ATen/ops/randint.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/bench_clock.h"
#include "rollout/engine/engine.h"
#include "rollout/server/http_server.h"
#include "rollout/server/scheduler.h"
#include "rollout/sglang_api.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/model.h"

ABSL_FLAG(int, threads, 1, "torch intra-op threads");
ABSL_FLAG(int, requests, 16, "requests per setting");
ABSL_FLAG(int, prompt, 32, "tokens per prompt");
ABSL_FLAG(int, new_tokens, 32, "greedy tokens per request");
ABSL_FLAG(std::string, config, "trainer/model/configs/bench-moe.json", "model config.json");
ABSL_FLAG(std::string, keep_model, "",
          "write the random checkpoint here and keep it (for tools/server/bench_generate_transformers.py)");

namespace moerl {
namespace {

int Run() {
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  const int requests = absl::GetFlag(FLAGS_requests), prompt = absl::GetFlag(FLAGS_prompt);
  const int new_tokens = absl::GetFlag(FLAGS_new_tokens);
  auto config = ModelConfig::FromFile(absl::GetFlag(FLAGS_config));
  if (!config.ok()) {
    std::cerr << config.status() << "\n";
    return 1;
  }
  auto model = std::make_shared<Qwen3Model>(*config);
  model->InitializeWeights(0);
  const std::string keep = absl::GetFlag(FLAGS_keep_model);
  const std::string dir = !keep.empty() ? keep
                                        : std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                                              "/moerl-server-benchmark-model";
  std::filesystem::remove_all(dir);
  if (absl::Status s = SaveHfCheckpoint(*model, dir, at::kFloat, 4ull << 30); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  at::Tensor pids = at::randint(config->vocab_size, {requests * prompt});
  std::vector<std::vector<int64_t>> prompts(requests);
  for (int b = 0; b < requests; ++b) {
    prompts[b].assign(pids.data_ptr<int64_t>() + b * prompt, pids.data_ptr<int64_t>() + (b + 1) * prompt);
  }
  const double total_tokens = static_cast<double>(requests) * new_tokens;

  GenerationEngine engine(model);
  SamplingConfig sc;
  sc.temperature = 0.0;
  sc.max_new_tokens = new_tokens;
  (void)engine.Generate({prompts[0]}, sc);  // warm-up
  // Tokens per wall second, and per CPU second of the whole process (the
  // steadier figure on a shared machine).
  double start = WallSeconds(), cpu = ProcessCpuSeconds();
  auto report = [&](const std::string& what) {
    const double wall = WallSeconds() - start, used = ProcessCpuSeconds() - cpu;
    std::printf("%-42s %8.1f tokens/s wall, %8.1f tokens/CPU-s\n", what.c_str(), total_tokens / wall,
                total_tokens / used);
    return total_tokens / used;
  };
  for (const auto& p : prompts) (void)engine.Generate({p}, sc);
  const double engine_one = report("engine in-process, one prompt at a time:");
  start = WallSeconds(), cpu = ProcessCpuSeconds();
  (void)engine.Generate(prompts, sc);
  const double engine_all = report("engine in-process, all prompts at once:");

  SchedulerOptions options;
  options.model_path = dir;
  options.max_running_requests = 16;
  options.context_length = prompt + new_tokens;
  auto scheduler = Scheduler::Create(options);
  if (!scheduler.ok()) {
    std::cerr << scheduler.status() << "\n";
    return 1;
  }
  SglangHttpServer http(scheduler->get(), 64, 1);
  auto port = http.Bind("127.0.0.1", 0);
  if (!port.ok()) {
    std::cerr << port.status() << "\n";
    return 1;
  }
  std::thread serve([&] { (void)http.Serve(); });
  auto send = [&](int i) {
    GenerateRequest r;
    r.input_ids = {prompts[i]};
    r.sampling_params[0].max_new_tokens = new_tokens;
    r.sampling_params[0].temperature = 0;
    r.sampling_params[0].ignore_eos = true;
    r.return_logprob = true;
    httplib::Client client("127.0.0.1", *port);
    client.set_read_timeout(600, 0);
    httplib::Result res = client.Post("/generate", GenerateRequestToJson(r).dump(), "application/json");
    if (!res || res->status != 200) std::cerr << "request " << i << " failed\n";
  };
  send(0);  // warm-up
  double sequential = 0;
  for (int clients : {1, 4, 16}) {
    if (clients > requests) break;
    start = WallSeconds(), cpu = ProcessCpuSeconds();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        for (int i = c; i < requests; i += clients) send(i);
      });
    }
    for (auto& t : threads) t.join();
    const double rate = report("server over HTTP, " + std::to_string(clients) + " concurrent clients:");
    if (clients == 1) sequential = rate;
    std::printf("  = %.2fx one client (per CPU-s)\n", rate / sequential);
    // HTTP + JSON + scheduler cost against the engine doing the same work
    // (one client: prompts one at a time; 16: all in one Generate).
    if (clients == 1 || clients == requests) {
      const double engine = clients == 1 ? engine_one : engine_all;
      std::printf("  HTTP+JSON+scheduler overhead vs the engine %s: %+.1f%% CPU per token\n",
                  clients == 1 ? "one at a time" : "all at once", 100.0 * (engine / rate - 1.0));
    }
  }
  http.Stop();
  serve.join();
  if (keep.empty()) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return moerl::Run();
}
