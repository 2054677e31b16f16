// Feeder throughput, end to end into a ring: prompts per second from GSM8K
// jsonl to Prompt messages popped by a consumer thread, against a peer
// measured in the same run: pushing the same number of pre-serialized prompts
// through the same ring (the transport's ceiling).
//   bazel run -c opt //dataset:feeder_bench -- $PWD/../shared/data/gsm8k/train.jsonl 3
// INTERIM: the ring is the test FakeRing (mutex + deque) and the tokenizer
// ByteTokenize; rerun with ShmRing and the BPE tokenizer when they land.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "dataset/feeder.h"
#include "dataset/testing/fake_ring.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Pops until end of stream; returns the number of messages.
int64_t Drain(moerl::MessageRing& ring) {
  int64_t n = 0;
  while (ring.Pop(absl::Seconds(10)).ok()) ++n;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: feeder_bench <train.jsonl> [epochs]\n");
    return 2;
  }
  moerl::FeederConfig config;
  config.path = argv[1];
  config.total_train_epochs = argc > 2 ? static_cast<uint32_t>(std::atoi(argv[2])) : 3;
  config.batch_size = 256;
  config.max_length = 1024;
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<moerl::Gsm8kFeeder> feeder = moerl::Gsm8kFeeder::Create(
      config, moerl::ByteTokenize,
      [](absl::string_view user) { return moerl::RenderQwenChatPrompt(user); });
  if (!feeder.ok()) {
    std::fprintf(stderr, "feeder_bench: %s\n", std::string(feeder.status().message()).c_str());
    return 1;
  }
  const double load_seconds = Seconds(start);

  auto state = std::make_shared<moerl::FakeRingState>(moerl::DeliveryMode::kPlain, 1024);
  moerl::FakeRing producer(state, true), consumer(state, false);
  int64_t popped = 0;
  std::thread drain([&] { popped = Drain(consumer); });
  moerl::RingPromptSink sink(&producer, absl::Seconds(10));
  moerl::FeederReport report;
  start = std::chrono::steady_clock::now();
  const absl::Status status = feeder->Run(sink, &report);
  drain.join();
  const double run_seconds = Seconds(start);
  if (!status.ok() || popped != report.prompts_published) {
    std::fprintf(stderr, "feeder_bench: %s, popped %lld\n", status.ToString().c_str(),
                 static_cast<long long>(popped));
    return 1;
  }

  // Peer: the same count of pre-serialized prompts through a fresh ring.
  const std::string payload = feeder->PromptAt({0, 0}).SerializeAsString();
  auto peer_state = std::make_shared<moerl::FakeRingState>(moerl::DeliveryMode::kPlain, 1024);
  moerl::FakeRing peer_producer(peer_state, true), peer_consumer(peer_state, false);
  int64_t peer_popped = 0;
  std::thread peer_drain([&] { peer_popped = Drain(peer_consumer); });
  start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < report.prompts_published; ++i) {
    if (!peer_producer.Push(payload, absl::Seconds(10)).ok()) return 1;
  }
  (void)peer_producer.CloseProducer();
  peer_drain.join();
  const double peer_seconds = Seconds(start);

  const double rate = report.prompts_published / run_seconds;
  const double peer_rate = peer_popped / peer_seconds;
  std::printf("load+render+tokenize: %lld rows in %.3f s = %.0f rows/s\n",
              static_cast<long long>(report.rows_read), load_seconds,
              report.rows_read / load_seconds);
  std::printf("feeder into ring: %lld prompts (%u epochs) in %.3f s = %.0f prompts/s\n",
              static_cast<long long>(report.prompts_published), config.total_train_epochs,
              run_seconds, rate);
  std::printf("peer (pre-serialized pushes, same ring): %.0f messages/s; feeder/peer = %.2f\n",
              peer_rate, rate / peer_rate);
  return 0;
}
