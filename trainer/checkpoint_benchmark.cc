// Time of a recover checkpoint (SaveTrainerCheckpoint: weights + AdamW state
// + manifest, every file fsynced, folder renamed) and of a weight
// publication (WeightPublisher::Publish: safetensors + index + config +
// probe.json, fsynced, folder renamed, LATEST replaced) against the bytes
// each writes, and against `dd if=/dev/zero bs=1M conv=fsync` writing as
// many bytes into the same folder in the same run (fsync on both sides).
// Models of a few sizes are built from --config by choosing the layer count;
// rounds alternate dd / checkpoint / dd / publish, best of each. Every file
// is removed after it is measured.
//
//   bazel run //trainer:checkpoint_benchmark -- --sizes_mb=10,100,400 --dir=/tmp/ckpt_bench
//   (flags: --config --dtype --publish_dtype --rounds --threads)
#include <ATen/Parallel.h>
#include <ATen/ops/zeros_like.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/bench_clock.h"
#include "trainer/checkpoint.h"
#include "trainer/optimizer.h"
#include "trainer/weight_publisher.h"

ABSL_FLAG(std::string, sizes_mb, "10,100,400", "approximate weight sizes (MB, in --dtype)");
ABSL_FLAG(std::string, config, "trainer/model/configs/tiny-moe.json", "model shape; layers are added to reach a size");
ABSL_FLAG(std::string, dtype, "float32", "training dtype: float32 or bfloat16 (bfloat16 keeps fp32 masters)");
ABSL_FLAG(std::string, publish_dtype, "", "dtype of published weights; \"\": --dtype");
ABSL_FLAG(std::string, dir, "", "folder to write into (default: a fresh folder under the temp directory)");
ABSL_FLAG(int, rounds, 2, "alternating rounds; the best of each is kept");
ABSL_FLAG(int, threads, 1, "torch intra-op threads");

namespace moerl {
namespace {

uint64_t BytesUnder(const std::string& path) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file()) total += it->file_size();
  }
  return total;
}

int64_t ParameterCount(const ModelConfig& config) {
  Qwen3Model model(config);
  int64_t n = 0;
  for (const at::Tensor& p : model.parameters()) n += p.numel();
  return n;
}

// Seconds of `dd` writing `bytes` (whole MiB, rounded up) into dir, fsync
// included; the file is removed after.
double DdSeconds(const std::string& dir, uint64_t bytes, uint64_t* written) {
  const uint64_t mib = (bytes + (1 << 20) - 1) >> 20;
  *written = mib << 20;
  const std::string file = dir + "/dd.bin";
  const std::string cmd =
      absl::StrCat("dd if=/dev/zero of=", file, " bs=1M count=", mib, " conv=fsync status=none");
  const double start = WallSeconds();
  const int rc = std::system(cmd.c_str());
  const double seconds = WallSeconds() - start;
  std::filesystem::remove(file);
  return rc == 0 ? seconds : -1;
}

int Run() {
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  const std::string dtype_name = absl::GetFlag(FLAGS_dtype);
  std::string publish_name = absl::GetFlag(FLAGS_publish_dtype);
  if (publish_name.empty()) publish_name = dtype_name;
  auto parse_dtype = [](const std::string& name, c10::ScalarType* out) {
    if (name == "float32") *out = at::kFloat;
    else if (name == "bfloat16") *out = at::kBFloat16;
    else return false;
    return true;
  };
  c10::ScalarType dtype, publish_dtype;
  if (!parse_dtype(dtype_name, &dtype) || !parse_dtype(publish_name, &publish_dtype)) {
    std::fprintf(stderr, "--dtype / --publish_dtype: expected float32 or bfloat16, got '%s' / '%s'\n",
                 dtype_name.c_str(), publish_name.c_str());
    return 1;
  }
  std::vector<double> sizes_mb;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_sizes_mb), ',')) {
    double mb = 0;
    if (!absl::SimpleAtod(s, &mb) || mb <= 0) {
      std::fprintf(stderr, "--sizes_mb: '%s' is not a positive number (expected e.g. 10,100,400)\n",
                   std::string(s).c_str());
      return 1;
    }
    sizes_mb.push_back(mb);
  }
  auto base_config = ModelConfig::FromFile(absl::GetFlag(FLAGS_config));
  if (!base_config.ok()) {
    std::fprintf(stderr, "--config: %s\n", std::string(base_config.status().message()).c_str());
    return 1;
  }
  std::string dir = absl::GetFlag(FLAGS_dir);
  const bool own_dir = dir.empty();
  if (own_dir) dir = absl::StrCat(std::filesystem::temp_directory_path().string(), "/moerl_ckpt_bench_", ::getpid());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "--dir: cannot create '%s': %s\n", dir.c_str(), ec.message().c_str());
    return 1;
  }
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  const double elt = dtype == at::kFloat ? 4.0 : 2.0;
  ModelConfig one = *base_config, two = *base_config;
  one.num_hidden_layers = 1;
  two.num_hidden_layers = 2;
  const int64_t per_layer = ParameterCount(two) - ParameterCount(one);
  const int64_t fixed = ParameterCount(one) - per_layer;

  std::printf("dir=%s dtype=%s publish_dtype=%s config=%s, best of %d alternating rounds\n", dir.c_str(),
              dtype_name.c_str(), publish_name.c_str(), absl::GetFlag(FLAGS_config).c_str(), rounds);
  std::printf("%9s %7s | %12s %9s %9s %6s | %12s %9s %9s %6s\n", "weights", "layers", "checkpoint", "MB/s",
              "dd MB/s", "ratio", "publish", "MB/s", "dd MB/s", "ratio");
  for (double mb : sizes_mb) {
    ModelConfig config = *base_config;
    config.num_hidden_layers = std::max<int64_t>(
        1, std::llround((mb * 1e6 / elt - static_cast<double>(fixed)) / static_cast<double>(per_layer)));
    auto model = std::make_shared<Qwen3Model>(config);
    model->InitializeWeights(1);
    if (dtype != at::kFloat) model->to(dtype);
    OptimizerSettings settings;
    TrainOptimizer optimizer(model->parameters(), settings, LrSchedule{});
    for (at::Tensor& p : model->parameters()) p.mutable_grad() = at::zeros_like(p);
    optimizer.Step(0);  // AdamW's moments exist from here on
    const double weight_bytes = static_cast<double>(ParameterCount(config)) * elt;

    double ckpt_s = 1e30, ckpt_dd_s = 1e30, pub_s = 1e30, pub_dd_s = 1e30;
    uint64_t ckpt_bytes = 0, pub_bytes = 0, ckpt_dd_bytes = 0, pub_dd_bytes = 0;
    const std::string ckpt_dir = dir + "/checkpoints", weights_dir = dir + "/weights";
    for (int round = 0; round < rounds; ++round) {
      // Checkpoint.
      std::filesystem::remove_all(ckpt_dir, ec);
      TrainerState state;
      state.step = 1;
      double start = WallSeconds();
      absl::Status s = SaveTrainerCheckpoint(ckpt_dir, *model, optimizer, state);
      const double ckpt = WallSeconds() - start;
      if (!s.ok()) {
        std::fprintf(stderr, "checkpoint: %s\n", std::string(s.message()).c_str());
        return 1;
      }
      ckpt_s = std::min(ckpt_s, ckpt);
      ckpt_bytes = BytesUnder(ckpt_dir);
      std::filesystem::remove_all(ckpt_dir, ec);
      const double dd1 = DdSeconds(dir, ckpt_bytes, &ckpt_dd_bytes);
      if (dd1 < 0) {
        std::fprintf(stderr, "dd into '%s' failed\n", dir.c_str());
        return 1;
      }
      ckpt_dd_s = std::min(ckpt_dd_s, dd1);
      // Publication.
      std::filesystem::remove_all(weights_dir, ec);
      WeightPublisherOptions options;
      options.weights_dir = weights_dir;
      options.dtype = publish_dtype;
      WeightPublisher publisher(options);
      start = WallSeconds();
      s = publisher.Publish(*model, 1);
      const double pub = WallSeconds() - start;
      if (!s.ok()) {
        std::fprintf(stderr, "publish: %s\n", std::string(s.message()).c_str());
        return 1;
      }
      pub_s = std::min(pub_s, pub);
      pub_bytes = BytesUnder(weights_dir);
      std::filesystem::remove_all(weights_dir, ec);
      pub_dd_s = std::min(pub_dd_s, DdSeconds(dir, pub_bytes, &pub_dd_bytes));
    }
    const double ckpt_rate = static_cast<double>(ckpt_bytes) / 1e6 / ckpt_s;
    const double ckpt_dd = static_cast<double>(ckpt_dd_bytes) / 1e6 / ckpt_dd_s;
    const double pub_rate = static_cast<double>(pub_bytes) / 1e6 / pub_s;
    const double pub_dd = static_cast<double>(pub_dd_bytes) / 1e6 / pub_dd_s;
    std::printf("%6.1f MB %7lld | %5.0f MB %4.2fs %9.1f %9.1f %6.2f | %5.0f MB %4.2fs %9.1f %9.1f %6.2f\n",
                weight_bytes / 1e6, static_cast<long long>(config.num_hidden_layers),
                static_cast<double>(ckpt_bytes) / 1e6, ckpt_s, ckpt_rate, ckpt_dd, ckpt_rate / ckpt_dd,
                static_cast<double>(pub_bytes) / 1e6, pub_s, pub_rate, pub_dd, pub_rate / pub_dd);
    std::fflush(stdout);
  }
  if (own_dir) std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY")) {
    if (chdir(ws) != 0) return 1;
  }
  return moerl::Run();
}
