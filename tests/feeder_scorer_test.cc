// The dataset feeder and the reward scorer back to back over in-process
// rings, with a stand-in for the rollout bridge in between: real GSM8K rows
// in, scored TrajectoryBatch groups out, rewards as expected.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto/prompt.pb.h"
#include "common/proto/trajectory.pb.h"
#include "common/testing/ring_channel.h"
#include "common/transport/in_process_ring.h"
#include "common/testing/shared_data.h"
#include "dataset/feeder.h"
#include "gtest/gtest.h"
#include "reward/scorer.h"
#include "reward/testing/stand_in_bridge.h"
#include "reward/testing/vector_batch_sink.h"

namespace moerl {
namespace {

TEST(FeederToScorer, RealGsm8kPromptsBecomeScoredGroups) {
  const std::string path = SharedDataPath("data/gsm8k/test.jsonl");
  ASSERT_FALSE(path.empty()) << MissingSharedDataMessage("data/gsm8k/test.jsonl");
  constexpr uint32_t kSamples = 4;
  constexpr int kPrompts = 64;

  // Feeder -> prompt ring.
  FeederConfig config;
  config.path = path;
  config.batch_size = 8;
  config.max_prompts = kPrompts;
  absl::StatusOr<Gsm8kFeeder> feeder = Gsm8kFeeder::Create(
      config, ByteTokenize, [](absl::string_view u) { return RenderQwenChatPrompt(u); });
  ASSERT_TRUE(feeder.ok()) << feeder.status();
  auto [prompts, feeder_end, bridge_in] = NewRingPair(DeliveryMode::kAcknowledged);
  RingPromptSink sink(feeder_end.get(), absl::Seconds(5));
  FeederReport feeder_report;
  ASSERT_TRUE(feeder->Run(sink, &feeder_report).ok());

  // Bridge stand-in: n_samples completions per prompt; sample 0 is right.
  auto [trajectories, bridge_out, scorer_in] = NewRingPair(DeliveryMode::kAcknowledged);
  while (true) {
    absl::StatusOr<RingMessage> m = bridge_in->Pop(absl::Seconds(5));
    if (absl::IsOutOfRange(m.status())) break;
    ASSERT_TRUE(m.ok()) << m.status();
    proto::Prompt prompt;
    ASSERT_TRUE(prompt.ParseFromString(m->payload));
    for (uint32_t i = 0; i < kSamples; ++i) {
      const proto::Trajectory t = StandInTrajectory(
          prompt, i,
          i == 0   ? absl::StrCat("So the answer is \\boxed{", prompt.gold_answer(), "}.")
          : i == 1 ? "I cannot solve this."
                   : "The answer is 0.5.");
      ASSERT_TRUE(bridge_out->Push(t.SerializeAsString(), absl::Seconds(5)).ok());
    }
    ASSERT_TRUE(bridge_in->Ack(m->ticket).ok());
  }
  ASSERT_TRUE(bridge_out->CloseProducer().ok());

  // Scorer -> batches of 8 groups.
  ScorerConfig scorer_config;
  scorer_config.n_samples = kSamples;
  scorer_config.batch_size = 8;
  scorer_config.poll_interval = absl::Milliseconds(5);
  VectorBatchSink batches;
  TrajectoryScorer scorer(scorer_config, &batches);
  ScorerReport report;
  ASSERT_TRUE(scorer.Run(*scorer_in, &report).ok());

  ASSERT_EQ(batches.batches.size(), static_cast<size_t>(kPrompts / 8));
  EXPECT_EQ(report.reasons["match"], kPrompts);
  EXPECT_EQ(report.reasons["no_answer"], kPrompts);
  for (const proto::TrajectoryBatch& batch : batches.batches) {
    ASSERT_EQ(batch.trajectories_size(), static_cast<int>(8 * kSamples));
    for (int k = 0; k < batch.trajectories_size(); ++k) {
      const proto::Trajectory& t = batch.trajectories(k);
      EXPECT_EQ(t.sample_index(), static_cast<uint32_t>(k % kSamples));
      EXPECT_EQ(t.reward(), t.sample_index() == 0 ? 1.0f : 0.0f)
          << t.output_text() << " vs gold " << t.gold_answer();
    }
  }
  EXPECT_TRUE(scorer_in->Stats().end_of_stream);
}

}  // namespace
}  // namespace moerl
