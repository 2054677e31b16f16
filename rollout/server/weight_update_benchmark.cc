// Weight-update latency against checkpoint size: `/update_weights_from_disk`
// on a running server, and the bridge's whole cycle (pause -> update ->
// continue -> the three probe sequences of weights/v<N>/probe.json), through
// the bridge's own SGLang client, next to plain reads of the same files.
// Random-weight Qwen3-MoE checkpoints of about 12, 90 and 400 MB (float32).
//
//   bazel build //rollout/server:weight_update_benchmark
//   ./bazel-bin/rollout/server/weight_update_benchmark --threads=1 --repeats=3
//
// "cold": each checkpoint file was fsync'ed and dropped from the page cache
// (posix_fadvise DONTNEED, which needs no privileges) just before; "warm":
// read once just before. Checkpoints go under $TMPDIR (default /tmp).
#include <fcntl.h>
#include <unistd.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/bench_clock.h"
#include "rollout/server/http_server.h"
#include "rollout/server/scheduler.h"
#include "rollout/sglang_http_client.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/model.h"

ABSL_FLAG(int, threads, 1, "torch intra-op threads");
ABSL_FLAG(int, repeats, 3, "timed updates per setting (the median is printed)");
ABSL_FLAG(std::string, sizes, "small,medium,large", "which checkpoints: small (~12 MB), medium (~90 MB), large (~400 MB)");

namespace moerl {
namespace {

// bench-moe's shapes (trainer/model/configs/bench-moe.json) with fewer or
// more layers; `small` is narrower.
ModelConfig Preset(const std::string& name) {
  ModelConfig c;
  c.vocab_size = 8192;
  c.hidden_size = 512;
  c.intermediate_size = 1024;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 64;
  c.max_position_embeddings = 256;
  c.num_experts = 16;
  c.num_experts_per_tok = 4;
  c.moe_intermediate_size = 256;
  c.norm_topk_prob = true;
  c.bos_token_id = 0;
  c.eos_token_ids = {1};
  if (name == "small") {
    c.vocab_size = 2048;
    c.hidden_size = 256;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.num_experts = 8;
    c.num_experts_per_tok = 2;
    c.moe_intermediate_size = 128;
    c.num_hidden_layers = 2;
  } else if (name == "medium") {
    c.num_hidden_layers = 2;
  } else {
    c.num_hidden_layers = 13;
  }
  return c;
}

std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path().string());
  }
  return files;
}

double Bytes(const std::string& dir) {
  double total = 0;
  for (const auto& f : Files(dir)) total += std::filesystem::file_size(f);
  return total;
}

// Drops the folder's files from the page cache (written back first).
void DropCache(const std::string& dir) {
  for (const auto& f : Files(dir)) {
    int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// Reads every file of the folder; seconds.
double ReadAll(const std::string& dir) {
  std::vector<char> buf(16 << 20);
  const double start = WallSeconds();
  for (const auto& f : Files(dir)) {
    FILE* in = std::fopen(f.c_str(), "rb");
    if (in == nullptr) continue;
    while (std::fread(buf.data(), 1, buf.size(), in) > 0) {
    }
    std::fclose(in);
  }
  return WallSeconds() - start;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median wall seconds of `repeats` runs of `body`, each after `prepare`;
// *cpu: the median CPU seconds of the whole process (server included) for
// the same runs, the steadier figure on a shared machine.
double Time(int repeats, const std::function<void()>& prepare, const std::function<bool()>& body,
            double* cpu = nullptr) {
  std::vector<double> t, c;
  for (int i = 0; i < repeats; ++i) {
    prepare();
    const double start = WallSeconds(), cpu_start = ProcessCpuSeconds();
    if (!body()) return -1;
    t.push_back(WallSeconds() - start);
    c.push_back(ProcessCpuSeconds() - cpu_start);
  }
  if (cpu != nullptr) *cpu = Median(c);
  return Median(t);
}

int RunPreset(const std::string& name, const std::string& root, int repeats) {
  const ModelConfig config = Preset(name);
  // Two checkpoints of different weights; updates alternate between them.
  std::vector<std::string> dirs = {root + "/" + name + "-a", root + "/" + name + "-b"};
  for (int i = 0; i < 2; ++i) {
    auto model = std::make_shared<Qwen3Model>(config);
    model->InitializeWeights(i);
    std::filesystem::remove_all(dirs[i]);
    if (absl::Status s = SaveHfCheckpoint(*model, dirs[i], at::kFloat, 5ull << 30); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  const double mb = Bytes(dirs[1]) / 1e6;

  SchedulerOptions options;
  options.model_path = dirs[0];
  options.max_running_requests = 4;
  options.context_length = 64;
  auto scheduler = Scheduler::Create(options);
  if (!scheduler.ok()) {
    std::cerr << scheduler.status() << "\n";
    return 1;
  }
  SglangHttpServer http(scheduler->get(), 8, 1);
  auto port = http.Bind("127.0.0.1", 0);
  if (!port.ok()) {
    std::cerr << port.status() << "\n";
    return 1;
  }
  std::thread serve([&] { (void)http.Serve(); });
  auto client = MakeSglangHttpClient(absl::StrCat("127.0.0.1:", *port), {});
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 1;
  }
  const absl::Duration timeout = absl::Seconds(600);
  int64_t version = 0;
  int next = 1;  // the folder the next update loads
  auto update = [&] {
    absl::Status s = (*client)->UpdateWeightsFromDisk(dirs[next], ++version, timeout);
    next = 1 - next;
    if (!s.ok()) std::cerr << s << "\n";
    return s.ok();
  };
  // The trainer's probe: three sequences of 8, 12 and 16 ids.
  std::vector<std::vector<int32_t>> probe;
  for (int len : {8, 12, 16}) {
    std::vector<int32_t> seq;
    for (int j = 0; j < len; ++j) seq.push_back((1 + 7919 * (probe.size() * 16 + j)) % config.vocab_size);
    probe.push_back(seq);
  }
  auto cycle = [&] {
    if (!(*client)->PauseGeneration(timeout).ok() || !update() || !(*client)->ContinueGeneration(timeout).ok()) {
      return false;
    }
    for (const auto& seq : probe) {
      if (!(*client)->ScoreTokens(seq, timeout).ok()) return false;
    }
    return true;
  };
  auto cold = [&] { DropCache(dirs[next]); };
  auto warm = [&] { (void)ReadAll(dirs[next]); };
  const double read_cold = Time(repeats, [&] { DropCache(dirs[1]); }, [&] { return ReadAll(dirs[1]) >= 0; });
  const double read_warm = Time(repeats, [&] { (void)ReadAll(dirs[1]); }, [&] { return ReadAll(dirs[1]) >= 0; });
  double update_cpu = 0, cycle_cpu = 0;
  const double update_cold = Time(repeats, cold, update);
  const double update_warm = Time(repeats, warm, update, &update_cpu);
  const double cycle_cold = Time(repeats, cold, cycle);
  const double cycle_warm = Time(repeats, warm, cycle, &cycle_cpu);
  std::printf("%-6s %7.1f MB | read cold %6.3f s (%6.0f MB/s), warm %6.3f s (%6.0f MB/s) | "
              "update cold %6.3f s (%6.0f MB/s), warm %6.3f s (%6.0f MB/s, %6.3f CPU-s) | "
              "pause+update+continue+probe cold %6.3f s, warm %6.3f s (%6.3f CPU-s)\n",
              name.c_str(), mb, read_cold, mb / read_cold, read_warm, mb / read_warm, update_cold,
              mb / update_cold, update_warm, mb / update_warm, update_cpu, cycle_cold, cycle_warm, cycle_cpu);
  std::fflush(stdout);
  http.Stop();
  serve.join();
  for (const auto& d : dirs) std::filesystem::remove_all(d);
  return update_cold < 0 || update_warm < 0 || cycle_cold < 0 || cycle_warm < 0 ? 1 : 0;
}

int Run() {
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  const std::string root =
      std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/moerl-weight-update-benchmark";
  std::filesystem::create_directories(root);
  int rc = 0;
  for (const char* name : {"small", "medium", "large"}) {
    if (absl::GetFlag(FLAGS_sizes).find(name) == std::string::npos) continue;
    rc |= RunPreset(name, root, absl::GetFlag(FLAGS_repeats));
  }
  std::filesystem::remove_all(root);
  return rc;
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return moerl::Run();
}
