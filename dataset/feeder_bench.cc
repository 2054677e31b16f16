// Feeder throughput, end to end into a ring: prompts per second from GSM8K
// jsonl to Prompt messages popped by a consumer thread from a ShmRing, with
// the real tokenizer (the shipped small one, or argv[3]: a Qwen tokenizer
// directory or tokenizer.json), against a peer measured in the same run:
// pushing the same number of pre-serialized prompts through a ShmRing of the
// same size (the transport's ceiling).
//   bazel run -c opt //dataset:feeder_bench -- $PWD/third_party/data/gsm8k/train.jsonl 3 [tokenizer]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/transport/shm_ring.h"
#include "dataset/feeder.h"
#include "dataset/feeder_run.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Opens a consumer on `name` and pops until end of stream.
int64_t Drain(const std::string& name) {
  auto ring = moerl::ShmRing::Open(name, moerl::RingRole::kConsumer);
  if (!ring.ok()) return -1;
  int64_t n = 0;
  moerl::RingMessage message;
  while ((*ring)->PopInto(&message, absl::Seconds(10)).ok()) ++n;
  return n;
}

// A ring for one measurement, removed at the end.
struct BenchRing {
  explicit BenchRing(const std::string& hop)
      : name(absl::StrCat("bench.feeder-", ::getpid(), ".", hop)) {
    moerl::ShmRing::CreateOptions options;
    options.capacity_bytes = 16 << 20;
    ok = moerl::ShmRing::Create(name, options).ok();
  }
  ~BenchRing() { moerl::ShmRing::Remove(name).IgnoreError(); }
  std::string name;
  bool ok = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: feeder_bench <train.jsonl> [epochs] [tokenizer]\n");
    return 2;
  }
  moerl::FeederSettings settings;
  settings.path = argv[1];
  settings.total_train_epochs = argc > 2 ? std::atoi(argv[2]) : 3;
  settings.batch_size = 256;
  settings.max_length = 1024;
  auto tokenizer = moerl::LoadPromptTokenizer(argc > 3 ? argv[3] : "", argv[0]);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "feeder_bench: %s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  BenchRing ring("prompts"), peer_ring("peer");
  if (!ring.ok || !peer_ring.ok) return 1;
  settings.ring = ring.name;
  settings.progress_every = 0;

  // RunFeeder = load + render + tokenize + publish, as the binary runs it.
  int64_t popped = 0;
  std::thread drain([&] { popped = Drain(ring.name); });
  moerl::FeederReport report;
  auto start = std::chrono::steady_clock::now();
  const absl::Status status = moerl::RunFeeder(settings, *tokenizer, nullptr, &report);
  drain.join();
  const double run_seconds = Seconds(start);
  if (!status.ok() || popped != report.prompts_published) {
    std::fprintf(stderr, "feeder_bench: %s, popped %lld\n", status.ToString().c_str(),
                 static_cast<long long>(popped));
    return 1;
  }

  // Peer: the same count of pre-serialized prompts through a fresh ring.
  auto feeder = moerl::Gsm8kFeeder::Create(
      settings.ToFeederConfig(), [&](absl::string_view t) { return tokenizer->Encode(t); },
      [&](absl::string_view u) {
        moerl::ChatOptions chat;
        chat.enable_thinking = false;  // as RunFeeder renders
        return tokenizer->RenderChatPrompt(u, chat);
      });
  const std::string payload = feeder->PromptAt({0, 0}).SerializeAsString();
  int64_t peer_popped = 0;
  std::thread peer_drain([&] { peer_popped = Drain(peer_ring.name); });
  auto producer = moerl::ShmRing::Open(peer_ring.name, moerl::RingRole::kProducer);
  if (!producer.ok()) return 1;
  start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < report.prompts_published; ++i) {
    if (!(*producer)->Push(payload, absl::Seconds(10)).ok()) return 1;
  }
  (void)(*producer)->CloseProducer();
  peer_drain.join();
  const double peer_seconds = Seconds(start);

  const double rate = report.prompts_published / run_seconds;
  const double peer_rate = peer_popped / peer_seconds;
  std::printf("feeder end to end (load + render + tokenize + publish into ShmRing): %lld rows, "
              "%lld prompts (%lld epochs) in %.3f s = %.0f prompts/s\n",
              static_cast<long long>(report.rows_read),
              static_cast<long long>(report.prompts_published),
              static_cast<long long>(settings.total_train_epochs), run_seconds, rate);
  std::printf("peer (pre-serialized pushes, same-size ShmRing): %.0f messages/s; feeder/peer = "
              "%.3f\n",
              peer_rate, rate / peer_rate);
  return 0;
}
