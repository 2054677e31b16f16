// Bridge throughput when generation is free: prompts in a shared-memory ring
// -> RolloutBridge -> whole groups in a shared-memory ring, against servers
// that answer at once (the in-process FakeInferenceClient, or with --http an
// SGLang-speaking HTTP server in the same process that returns canned answers,
// rollout/testing/scripted_sglang_server.h). Output ids are decoded with the
// small GSM8K tokenizer, as the bridge binary does. Shows the bridge's own
// cost per group: what it adds to a run whose servers are the bottleneck.
//
//   bazel build //rollout:bridge_benchmark
//   ./bazel-bin/rollout/bridge_benchmark --groups=2000            # in-process servers
//   ./bazel-bin/rollout/bridge_benchmark --groups=2000 --http     # over HTTP
//
// Staleness admission is opened wide (max_head_offpolicyness) since no trainer
// raises the version here.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/bench_clock.h"
#include "common/proto/formats.h"
#include "common/tokenizer/tokenizer.h"
#include "common/transport/shm_ring.h"
#include "common/weights_dir.h"
#include "dataset/feeder_run.h"
#include "rollout/bridge.h"
#include "rollout/fake_inference_client.h"
#include "rollout/sglang_http_client.h"
#include "rollout/testing/scripted_sglang_server.h"

ABSL_FLAG(int, groups, 2000, "prompts (groups) to push through");
ABSL_FLAG(int, n_samples, 4, "gconfig.n_samples");
ABSL_FLAG(int, max_new_tokens, 40, "gconfig.max_new_tokens (the fake servers answer this many)");
ABSL_FLAG(int, prompt_tokens, 120, "tokens per prompt");
ABSL_FLAG(int, servers, 1, "inference servers");
ABSL_FLAG(int, max_concurrent_rollouts, 32, "rollout.max_concurrent_rollouts (groups)");
ABSL_FLAG(bool, http, false, "servers over HTTP (canned SGLang answers) instead of in-process");

namespace moerl {
namespace {

int Run(const std::string& argv0) {
  const int groups = absl::GetFlag(FLAGS_groups);
  absl::StatusOr<Tokenizer> tokenizer = LoadPromptTokenizer("", argv0);
  if (!tokenizer.ok()) {
    std::cerr << tokenizer.status() << "\n";
    return 1;
  }
  const std::string tag = absl::StrCat("bench", ::getpid());
  const std::string root =
      std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/moerl-bridge-benchmark-" + tag;
  const std::string weights = root + "/weights";
  std::filesystem::create_directories(VersionDir(weights, 0));
  std::ofstream(VersionDir(weights, 0) + "/config.json") << "{}";
  if (absl::Status s = WriteLatestVersion(weights, 0); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }

  BridgeConfig config;
  config.n_samples = absl::GetFlag(FLAGS_n_samples);
  config.sampling.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  config.sampling.ignore_eos = true;
  config.max_tokens = 4096;
  config.max_concurrent_rollouts = absl::GetFlag(FLAGS_max_concurrent_rollouts);
  config.consumer_batch_size = 16;
  config.max_head_offpolicyness = 1 << 30;
  config.weights_dir = weights;

  std::vector<std::unique_ptr<ScriptedServer>> http_servers;
  std::vector<std::unique_ptr<InferenceClient>> clients;
  for (int i = 0; i < absl::GetFlag(FLAGS_servers); ++i) {
    if (absl::GetFlag(FLAGS_http)) {
      http_servers.push_back(std::make_unique<ScriptedServer>());
      if (!http_servers.back()->Start()) {
        std::cerr << "cannot start an HTTP server\n";
        return 1;
      }
      auto client = MakeSglangHttpClient(http_servers.back()->address(), {});
      if (!client.ok()) {
        std::cerr << client.status() << "\n";
        return 1;
      }
      clients.push_back(std::move(*client));
    } else {
      clients.push_back(std::make_unique<FakeInferenceClient>(absl::StrCat("fake:", i)));
    }
  }

  absl::StatusOr<std::string> prompt_name = ShmRing::SegmentName(tag, "t0", "prompts");
  absl::StatusOr<std::string> group_name = ShmRing::SegmentName(tag, "t0", "trajectories");
  if (!prompt_name.ok() || !group_name.ok() ||
      !ShmRing::Create(*prompt_name, {.capacity_bytes = 16 << 20, .mode = DeliveryMode::kAcknowledged}).ok() ||
      !ShmRing::Create(*group_name, {.capacity_bytes = 64 << 20}).ok()) {
    std::cerr << "cannot create the rings\n";
    return 1;
  }
  auto feeder = ShmRing::Open(*prompt_name, RingRole::kProducer);
  auto scorer = ShmRing::Open(*group_name, RingRole::kConsumer);
  auto bridge_in = ShmRing::Open(*prompt_name, RingRole::kConsumer);
  auto bridge_out = ShmRing::Open(*group_name, RingRole::kProducer);
  if (!feeder.ok() || !scorer.ok() || !bridge_in.ok() || !bridge_out.ok()) {
    std::cerr << "cannot open the rings\n";
    return 1;
  }

  // The feeder pushes every prompt up front (the ring holds them all), so the
  // clock measures the bridge and the consumer only.
  for (int i = 0; i < groups; ++i) {
    proto::Prompt p;
    p.set_format_version(kPromptFormatVersion);
    p.set_id(absl::StrCat("bench/train/", i));
    for (int t = 0; t < absl::GetFlag(FLAGS_prompt_tokens); ++t) p.add_tokens(100 + (i * 7 + t) % 5000);
    p.set_gold_answer("42");
    if (!(*feeder)->Push(p.SerializeAsString(), absl::Seconds(10)).ok()) {
      std::cerr << "prompt ring full: lower --groups\n";
      return 1;
    }
  }
  (void)(*feeder)->CloseProducer();

  std::atomic<int64_t> received{0}, trajectories{0};
  std::thread consumer([&] {
    while (true) {
      absl::StatusOr<RingMessage> m = (*scorer)->Pop(absl::Seconds(60));
      if (!m.ok()) return;  // end of stream (or a stall: reported below)
      proto::TrajectoryBatch batch;
      if (batch.ParseFromString(m->payload)) trajectories += batch.trajectories_size();
      ++received;
    }
  });

  RolloutBridge bridge(config, std::move(clients), [&](absl::Span<const int32_t> ids) {
    return tokenizer->Decode(ids);
  });
  BridgeReport report;
  const double start = WallSeconds(), cpu = ProcessCpuSeconds();
  absl::Status status = bridge.Run(**bridge_in, **bridge_out, &report);
  consumer.join();
  const double wall = WallSeconds() - start, used = ProcessCpuSeconds() - cpu;
  for (auto& s : http_servers) s->Stop();
  (void)ShmRing::Remove(*prompt_name);
  (void)ShmRing::Remove(*group_name);
  std::filesystem::remove_all(root);
  if (!status.ok() || received != groups) {
    std::cerr << "bridge: " << status << ", " << received << " of " << groups << " groups\n";
    return 1;
  }
  std::printf("%s servers x%d, %d groups of %d x %d tokens (prompt %d): %.0f groups/s wall, "
              "%.0f groups per CPU-s (%.1f ms CPU per group, %.0f requests/s)\n",
              absl::GetFlag(FLAGS_http) ? "HTTP" : "in-process", absl::GetFlag(FLAGS_servers), groups,
              config.n_samples, absl::GetFlag(FLAGS_max_new_tokens), absl::GetFlag(FLAGS_prompt_tokens),
              groups / wall, groups / used, 1e3 * used / groups, report.requests / wall);
  return 0;
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return moerl::Run(argv[0]);
}
