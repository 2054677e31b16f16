// Feeder -> ShmRing -> stand-in bridge -> ShmRing -> scorer, on real shared
// memory rings, each stage on its own thread with its own ring objects, as
// the binaries run them (RunFeeder and RunScorer are what their mains call).
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto/trajectory.pb.h"
#include "common/transport/record_io.h"
#include "common/transport/shm_ring.h"
#include "dataset/feeder_run.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "reward/scorer_run.h"
#include "reward/testing/stand_in_bridge.h"

namespace moerl {
namespace {

constexpr uint32_t kSamples = 3;

// A ring named after the test and this process, removed at the end.
class ScopedRing {
 public:
  ScopedRing(const std::string& hop, DeliveryMode mode) {
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    name_ = *ShmRing::SegmentName("ringtest", absl::StrCat(test.substr(0, 40), "-", ::getpid()),
                                  hop);
    ShmRing::CreateOptions options;
    options.capacity_bytes = 1 << 20;
    options.mode = mode;
    options.reclaim_stale = true;
    status_ = ShmRing::Create(name_, options);
  }
  ~ScopedRing() { ShmRing::Remove(name_).IgnoreError(); }
  const std::string& name() const { return name_; }
  const absl::Status& status() const { return status_; }

 private:
  std::string name_;
  absl::Status status_;
};

std::vector<std::string> BatchFiles(const std::string& dir) {
  std::vector<std::string> files;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return files;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() == 10 && name.substr(6) == ".rec") files.push_back(dir + "/" + name);
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  return files;
}

TEST(RingPipeline, FeederPromptsReachTheScorerAndComeOutAsScoredBatchFiles) {
  ScopedRing prompts("prompts", DeliveryMode::kPlain);
  ScopedRing trajectories("trajectories", DeliveryMode::kAcknowledged);
  ASSERT_TRUE(prompts.status().ok()) << prompts.status();
  ASSERT_TRUE(trajectories.status().ok()) << trajectories.status();

  FeederSettings feeder;
  feeder.path = "dataset/testdata/sample.jsonl";  // 5 rows
  feeder.total_train_epochs = 2;
  feeder.ring = prompts.name();
  absl::StatusOr<Tokenizer> tokenizer = LoadPromptTokenizer("", "");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();

  ScorerRunOptions scorer;
  scorer.ring = trajectories.name();
  scorer.output_dir = std::string(std::getenv("TEST_TMPDIR")) + "/run/batches";
  scorer.scorer.n_samples = kSamples;
  scorer.scorer.batch_size = 4;

  // Consumers attach first; the feeder's and bridge's producers attach on Open.
  absl::Status bridge_status, feeder_status, scorer_status;
  StandInBridgeReport bridge_report;
  std::thread bridge([&] {
    bridge_status =
        RunStandInBridge(prompts.name(), trajectories.name(), kSamples, &bridge_report);
  });
  FeederReport feeder_report;
  std::thread feeder_thread(
      [&] { feeder_status = RunFeeder(feeder, *tokenizer, nullptr, &feeder_report); });
  ScorerReport report;
  scorer_status = RunScorer(scorer, nullptr, &report);
  feeder_thread.join();
  bridge.join();
  ASSERT_TRUE(feeder_status.ok()) << feeder_status;
  ASSERT_TRUE(bridge_status.ok()) << bridge_status;
  ASSERT_TRUE(scorer_status.ok()) << scorer_status;

  EXPECT_EQ(feeder_report.prompts_published, 10);
  EXPECT_EQ(bridge_report.prompts, 10);
  EXPECT_EQ(report.trajectories_scored, 30);
  EXPECT_EQ(report.groups_written, 10);
  EXPECT_EQ(report.batches_written, 3);  // 4 + 4 + 2 groups
  EXPECT_EQ(report.reasons["match"], 10);
  EXPECT_EQ(report.reasons["mismatch"], 20);

  // What the trainer will read: numbered record files of whole groups.
  const std::vector<std::string> files = BatchFiles(scorer.output_dir);
  ASSERT_EQ(files.size(), 3u);
  int groups = 0;
  for (size_t b = 0; b < files.size(); ++b) {
    absl::StatusOr<std::unique_ptr<RecordReader>> reader = RecordReader::Open(files[b]);
    ASSERT_TRUE(reader.ok()) << reader.status();
    proto::TrajectoryBatch batch;
    ASSERT_TRUE(*(*reader)->NextMessage(&batch)) << files[b];
    EXPECT_EQ(batch.batch_index(), b);
    ASSERT_EQ(batch.trajectories_size() % kSamples, 0u);
    for (int i = 0; i < batch.trajectories_size(); ++i) {
      const proto::Trajectory& t = batch.trajectories(i);
      EXPECT_TRUE(t.scored());
      EXPECT_EQ(t.sample_index(), i % kSamples);
      EXPECT_EQ(t.reward(), t.sample_index() == 0 ? 1.0f : 0.0f) << t.output_text();
      EXPECT_FALSE(t.prompt_tokens().empty());
      EXPECT_EQ(t.group_id(), batch.trajectories(i - i % kSamples).group_id());
    }
    groups += batch.trajectories_size() / kSamples;
  }
  EXPECT_EQ(groups, 10);
  // Everything was acknowledged: nothing is left for another scorer.
  absl::StatusOr<std::unique_ptr<ShmRing>> observer =
      ShmRing::Open(trajectories.name(), RingRole::kObserver);
  ASSERT_TRUE(observer.ok());
  EXPECT_EQ((*observer)->Stats().in_flight, 0u);
  EXPECT_EQ((*observer)->Stats().acked, 30u);
}

TEST(RingPipeline, TheScorerRefusesAPlainModeRing) {
  ScopedRing plain("trajectories", DeliveryMode::kPlain);
  ASSERT_TRUE(plain.status().ok()) << plain.status();
  ScorerRunOptions scorer;
  scorer.ring = plain.name();
  scorer.output_dir = std::string(std::getenv("TEST_TMPDIR")) + "/plain";
  ScorerReport report;
  const absl::Status status = RunScorer(scorer, nullptr, &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("--mode=ack"), std::string::npos) << status;
}

}  // namespace
}  // namespace moerl
