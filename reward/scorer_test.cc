#include "reward/scorer.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/proto/trajectory.pb.h"
#include "common/testing/ring_channel.h"
#include "common/transport/in_process_ring.h"
#include "common/transport/record_io.h"
#include "gtest/gtest.h"
#include "reward/scorer_run.h"
#include "reward/testing/vector_batch_sink.h"

namespace moerl {
namespace {

proto::Trajectory MakeTrajectory(const std::string& group, uint32_t index,
                                 const std::string& text, const std::string& gold = "18") {
  proto::Trajectory t;
  t.set_format_version(1);
  t.set_prompt_id("gsm8k/train/" + group);
  t.set_group_id(group);
  t.set_sample_index(index);
  t.set_output_text(text);
  t.set_gold_answer(gold);
  return t;
}

std::multiset<std::string> GroupsIn(const std::vector<proto::TrajectoryBatch>& batches) {
  std::multiset<std::string> groups;
  for (const proto::TrajectoryBatch& b : batches) {
    for (const proto::Trajectory& t : b.trajectories()) {
      if (t.sample_index() == 0) groups.insert(t.group_id());
    }
  }
  return groups;
}

ScorerConfig Config(uint32_t n_samples, uint32_t batch_size) {
  ScorerConfig config;
  config.n_samples = n_samples;
  config.batch_size = batch_size;
  config.poll_interval = absl::Milliseconds(5);
  return config;
}

void Push(MessageRing& ring, const proto::Trajectory& t) {
  ASSERT_TRUE(ring.Push(t.SerializeAsString(), absl::Seconds(1)).ok());
}

TEST(TrajectoryScorer, AMalformedMessageIsCountedAndAckedWithoutBlockingTheRest) {
  auto [state, producer, consumer] = NewRingPair(DeliveryMode::kAcknowledged);
  ASSERT_TRUE(producer->Push(std::string("\xff\xff\xff not a trajectory"), absl::Seconds(1)).ok());
  Push(*producer, MakeTrajectory("a", 0, "\\boxed{18}"));
  Push(*producer, MakeTrajectory("a", 1, "17"));
  ASSERT_TRUE(producer->CloseProducer().ok());

  VectorBatchSink sink;
  TrajectoryScorer scorer(Config(2, 1), &sink);
  ScorerReport report;
  ASSERT_TRUE(scorer.Run(*consumer, &report).ok());
  EXPECT_EQ(report.malformed_dropped, 1);
  EXPECT_EQ(report.groups_written, 1);
  ASSERT_EQ(sink.batches.size(), 1u);
  const RingStats stats = consumer->Stats();
  EXPECT_EQ(stats.acked, 3u);
  EXPECT_EQ(stats.in_flight, 0u);
  EXPECT_TRUE(stats.end_of_stream);
}

TEST(TrajectoryScorer, WritesWholeScoredGroupsBatchSizeAtATime) {
  auto [state, producer, consumer] = NewRingPair(DeliveryMode::kAcknowledged);
  // Three groups of two, interleaved and out of order.
  Push(*producer, MakeTrajectory("a", 1, "\\boxed{18}"));
  Push(*producer, MakeTrajectory("b", 0, "no idea"));
  Push(*producer, MakeTrajectory("a", 0, "The answer is 17."));
  Push(*producer, MakeTrajectory("c", 0, "\\boxed{18}"));
  Push(*producer, MakeTrajectory("b", 1, "#### 18"));
  Push(*producer, MakeTrajectory("c", 1, "\\boxed{18}"));
  ASSERT_TRUE(producer->CloseProducer().ok());

  VectorBatchSink sink;
  TrajectoryScorer scorer(Config(2, 2), &sink);
  ScorerReport report;
  ASSERT_TRUE(scorer.Run(*consumer, &report).ok());
  ASSERT_EQ(sink.batches.size(), 2u);  // 2 groups, then the last 1 at the end
  const proto::TrajectoryBatch& first = sink.batches[0];
  EXPECT_EQ(first.group_size(), 2u);
  ASSERT_EQ(first.trajectories_size(), 4);
  // Group "a" completed first; its members are contiguous, by sample_index.
  EXPECT_EQ(first.trajectories(0).group_id(), "a");
  EXPECT_EQ(first.trajectories(0).sample_index(), 0u);
  EXPECT_EQ(first.trajectories(0).reward(), 0.0f);
  EXPECT_EQ(first.trajectories(0).reward_reason(), "mismatch");
  EXPECT_EQ(first.trajectories(1).reward(), 1.0f);
  EXPECT_TRUE(first.trajectories(1).scored());
  EXPECT_EQ(first.trajectories(2).group_id(), "b");
  EXPECT_EQ(first.trajectories(2).reward_reason(), "no_answer");
  EXPECT_EQ(sink.batches[1].trajectories_size(), 2);
  EXPECT_EQ(report.trajectories_scored, 6);
  EXPECT_EQ(report.reasons["match"], 4);
  EXPECT_EQ(report.groups_written, 3);
  const RingStats stats = consumer->Stats();
  EXPECT_EQ(stats.acked, 6u);
  EXPECT_TRUE(stats.end_of_stream);
}

TEST(TrajectoryScorer, SortGroupsWritesABatchInGroupIdOrderWhateverTheArrivalOrder) {
  for (bool sort : {false, true}) {
    auto [state, producer, consumer] = NewRingPair(DeliveryMode::kAcknowledged);
    // "b" completes before "a".
    Push(*producer, MakeTrajectory("b", 0, "1"));
    Push(*producer, MakeTrajectory("b", 1, "2"));
    Push(*producer, MakeTrajectory("a", 1, "3"));
    Push(*producer, MakeTrajectory("a", 0, "4"));
    ASSERT_TRUE(producer->CloseProducer().ok());
    VectorBatchSink sink;
    ScorerConfig config = Config(2, 2);
    config.sort_groups = sort;
    TrajectoryScorer scorer(config, &sink);
    ScorerReport report;
    ASSERT_TRUE(scorer.Run(*consumer, &report).ok());
    ASSERT_EQ(sink.batches.size(), 1u);
    ASSERT_EQ(sink.batches[0].trajectories_size(), 4);
    EXPECT_EQ(sink.batches[0].trajectories(0).group_id(), sort ? "a" : "b") << "sort_groups=" << sort;
    EXPECT_EQ(sink.batches[0].trajectories(0).sample_index(), 0u);
    EXPECT_EQ(sink.batches[0].trajectories(2).group_id(), sort ? "b" : "a") << "sort_groups=" << sort;
  }
}

TEST(TrajectoryScorer, ScoresWithTheConfiguredUnitRule) {
  for (const UnitRule rule : {UnitRule::kMathVerify, UnitRule::kLenient}) {
    auto [state, producer, consumer] = NewRingPair(DeliveryMode::kAcknowledged);
    Push(*producer, MakeTrajectory("a", 0, "\\boxed{18 dollars}"));
    ASSERT_TRUE(producer->CloseProducer().ok());
    VectorBatchSink sink;
    ScorerConfig config = Config(1, 1);
    config.unit_rule = rule;
    TrajectoryScorer scorer(config, &sink);
    ScorerReport report;
    ASSERT_TRUE(scorer.Run(*consumer, &report).ok());
    ASSERT_EQ(sink.batches.size(), 1u);
    // math-verify reads "dollars" as symbols; lenient drops the word.
    EXPECT_EQ(sink.batches[0].trajectories(0).reward(), rule == UnitRule::kLenient ? 1.0f : 0.0f);
  }
}

TEST(TrajectoryScorer, AKilledScorerLosesNothing) {
  auto state = NewChannel(DeliveryMode::kAcknowledged);
  std::unique_ptr<MessageRing> producer = InProcessRing::Attach(state, RingRole::kProducer);
  for (const char* g : {"a", "b"}) Push(*producer, MakeTrajectory(g, 0, "\\boxed{18}"));
  Push(*producer, MakeTrajectory("a", 1, "\\boxed{18}"));  // "a" complete, batch needs 2 groups

  VectorBatchSink sink;
  {
    std::unique_ptr<MessageRing> dying = InProcessRing::Attach(state, RingRole::kConsumer);
    TrajectoryScorer scorer(Config(2, 2), &sink);
    ScorerReport report;
    ASSERT_TRUE(scorer.Run(*dying, &report, [] { return true; }).ok());
    EXPECT_EQ(report.trajectories_scored, 3);
    EXPECT_TRUE(sink.batches.empty());
    // The scorer dies holding three unacknowledged messages (end of scope).
  }
  Push(*producer, MakeTrajectory("b", 1, "\\boxed{17}"));
  ASSERT_TRUE(producer->CloseProducer().ok());
  std::unique_ptr<MessageRing> survivor = InProcessRing::Attach(state, RingRole::kConsumer);
  TrajectoryScorer scorer(Config(2, 2), &sink);
  ScorerReport report;
  ASSERT_TRUE(scorer.Run(*survivor, &report).ok());
  ASSERT_EQ(sink.batches.size(), 1u);
  EXPECT_EQ(GroupsIn(sink.batches), (std::multiset<std::string>{"a", "b"}));
  EXPECT_EQ(survivor->Stats().redelivered, 3u);
  EXPECT_TRUE(survivor->Stats().end_of_stream);
}

TEST(TrajectoryScorer, SeveralScorersShareOneRingOfGroupMessages) {
  auto state = NewChannel(DeliveryMode::kAcknowledged, 16 * 4096);
  constexpr int kGroups = 40;
  VectorBatchSink sink;
  std::vector<ScorerReport> reports(3);
  std::vector<std::thread> scorers;
  std::vector<std::unique_ptr<MessageRing>> handles;
  for (int s = 0; s < 3; ++s) handles.push_back(InProcessRing::Attach(state, RingRole::kConsumer));
  std::unique_ptr<MessageRing> producer = InProcessRing::Attach(state, RingRole::kProducer);
  for (int s = 0; s < 3; ++s) {
    scorers.emplace_back([&, s] {
      ScorerConfig config = Config(4, 3);
      config.message_kind = MessageKind::kGroup;
      TrajectoryScorer scorer(config, &sink);
      EXPECT_TRUE(scorer.Run(*handles[s], &reports[s]).ok());
    });
  }
  for (int g = 0; g < kGroups; ++g) {
    proto::TrajectoryBatch group;
    for (uint32_t i = 0; i < 4; ++i) {
      *group.add_trajectories() = MakeTrajectory(absl::StrCat("g", g), i, "\\boxed{18}");
    }
    ASSERT_TRUE(producer->Push(group.SerializeAsString(), absl::Seconds(5)).ok());
  }
  ASSERT_TRUE(producer->CloseProducer().ok());
  for (std::thread& t : scorers) t.join();
  const std::multiset<std::string> groups = GroupsIn(sink.batches);
  EXPECT_EQ(groups.size(), static_cast<size_t>(kGroups));
  EXPECT_EQ(std::set<std::string>(groups.begin(), groups.end()).size(),
            static_cast<size_t>(kGroups));  // each exactly once
  for (const proto::TrajectoryBatch& b : sink.batches) EXPECT_LE(b.trajectories_size(), 12);
}

TEST(TrajectoryScorer, DropsAndCountsIncompleteGroupsAndDuplicates) {
  auto [state, producer, consumer] = NewRingPair(DeliveryMode::kAcknowledged);
  Push(*producer, MakeTrajectory("lonely", 0, "\\boxed{18}"));
  Push(*producer, MakeTrajectory("lonely", 0, "\\boxed{18}"));  // a redelivered copy
  ASSERT_TRUE(producer->CloseProducer().ok());
  VectorBatchSink sink;
  TrajectoryScorer scorer(Config(2, 1), &sink);
  ScorerReport report;
  ASSERT_TRUE(scorer.Run(*consumer, &report).ok());
  EXPECT_TRUE(sink.batches.empty());
  EXPECT_EQ(report.incomplete_groups_dropped, 1);
  EXPECT_EQ(report.duplicates_dropped, 1);
  EXPECT_TRUE(consumer->Stats().end_of_stream);
}

TEST(TrajectoryScorer, BadMessagesAreDroppedWithALogLineNamingWhatIsWrong) {
  auto [state, producer, consumer] = NewRingPair(DeliveryMode::kPlain);
  Push(*producer, MakeTrajectory("g", 5, "x"));
  ASSERT_TRUE(producer->Push(std::string("\xff\xff\xff", 3), absl::Seconds(1)).ok());
  ASSERT_TRUE(producer->CloseProducer().ok());
  VectorBatchSink sink;
  TrajectoryScorer scorer(Config(4, 1), &sink);
  ScorerReport report;
  testing::internal::CaptureStderr();
  absl::Status status = scorer.Run(*consumer, &report);
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.malformed_dropped, 2);
  EXPECT_TRUE(sink.batches.empty());
  EXPECT_NE(log.find("trajectory of group 'g' sample 5: sample_index must be < "
                     "gconfig.n_samples=4"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("ring message (ticket 0, 3 bytes) is not a Trajectory"), std::string::npos)
      << log;
  ScorerConfig zero = Config(0, 1);
  EXPECT_EQ(zero.Validate().message(), "gconfig.n_samples must be positive, got 0");
}

std::string TmpDir(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

TEST(DirectoryBatchSink, NumbersBatchesAcrossSinksWithoutOverwriting) {
  const std::string dir = TmpDir("shared_batches");
  DirectoryBatchSink a(dir), b(dir);
  proto::TrajectoryBatch batch;
  EXPECT_EQ(*a.WriteBatch(batch), dir + "/000000.rec");
  EXPECT_EQ(*b.WriteBatch(batch), dir + "/000001.rec");
  EXPECT_EQ(*b.WriteBatch(batch), dir + "/000002.rec");
  EXPECT_EQ(*a.WriteBatch(batch), dir + "/000003.rec");
  EXPECT_EQ(batch.batch_index(), 3u);
}

TEST(DirectoryBatchSink, ARestartIntoAFullDirectoryClaimsTheNextNumberAtOnce) {
  const std::string dir = TmpDir("full_batches");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  for (int i = 0; i < 500; ++i) {
    std::ofstream(absl::StrFormat("%s/%06d.rec", dir, i)) << "x";
  }
  std::ofstream(dir + "/notes.txt") << "not a batch";
  DirectoryBatchSink sink(dir);
  proto::TrajectoryBatch batch;
  absl::StatusOr<std::string> path = sink.WriteBatch(batch);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, dir + "/000500.rec");
  EXPECT_EQ(batch.batch_index(), 500u);
  EXPECT_EQ(sink.stats().link_attempts, 1);
  EXPECT_EQ(sink.stats().directory_listings, 1);
  EXPECT_EQ(*sink.WriteBatch(batch), dir + "/000501.rec");
  EXPECT_EQ(sink.stats().link_attempts, 2);
  EXPECT_EQ(sink.stats().directory_listings, 1);  // listed once, at the start
}

TEST(DirectoryBatchSink, LosingARaceListsAgainInsteadOfCountingUp) {
  const std::string dir = TmpDir("raced_batches");
  DirectoryBatchSink a(dir), b(dir);
  proto::TrajectoryBatch batch;
  EXPECT_EQ(*a.WriteBatch(batch), dir + "/000000.rec");
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(b.WriteBatch(batch).ok());  // b takes 1..50
  EXPECT_EQ(*a.WriteBatch(batch), dir + "/000051.rec");
  EXPECT_EQ(a.stats().link_attempts, 3);  // 0, then 1 (taken), then 51
  EXPECT_EQ(a.stats().directory_listings, 2);
}

pid_t DeadPid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}

std::string ThisHost() {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  return name;
}

TEST(DirectoryBatchSink, RemovesTemporariesOfDeadWritersOnly) {
  const std::string dir = TmpDir("stale_batches");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const pid_t dead = DeadPid();
  const std::string host = ThisHost();
  const std::vector<std::string> stale = {
      absl::StrCat(".batch-", dead, "-1@", host, "@"),
      absl::StrCat(".batch-", dead, "-2@", host, "@.tmp.", dead, ".0"),  // killed mid-write
      absl::StrCat(".batch-", dead, "-3"),  // before hosts were recorded
  };
  const std::vector<std::string> kept = {
      absl::StrCat(".batch-", ::getpid(), "-4@", host, "@"),        // a live writer
      absl::StrCat(".batch-", dead, "-5@another-host.example@"),  // not ours to judge
      ".batch-not-a-pid",
  };
  for (const std::string& name : stale) std::ofstream(dir + "/" + name) << "partial";
  for (const std::string& name : kept) std::ofstream(dir + "/" + name) << "partial";
  DirectoryBatchSink sink(dir);
  proto::TrajectoryBatch batch;
  EXPECT_EQ(*sink.WriteBatch(batch), dir + "/000000.rec");
  EXPECT_EQ(sink.stats().stale_temporaries_removed, 3);
  for (const std::string& name : stale) {
    EXPECT_NE(::access((dir + "/" + name).c_str(), F_OK), 0) << name << " should be gone";
  }
  for (const std::string& name : kept) {
    EXPECT_EQ(::access((dir + "/" + name).c_str(), F_OK), 0) << name << " should stay";
  }
}

// The binary's path: a file of trajectories in, batch files out.
TEST(RunScorer, ScoresAFileOfTrajectoriesIntoBatchFiles) {
  const std::string input = TmpDir("trajectories.rec");
  {
    auto writer = RecordWriter::Create(input);
    ASSERT_TRUE(writer.ok());
    for (int g = 0; g < 4; ++g) {
      for (uint32_t i = 0; i < 2; ++i) {
        ASSERT_TRUE((*writer)
                        ->WriteMessage(MakeTrajectory(absl::StrCat("g", g), i,
                                                      i == 0 ? "\\boxed{18}" : "so 3"))
                        .ok());
      }
    }
    ASSERT_TRUE((*writer)->Close().ok());
  }
  ScorerRunOptions options;
  options.input_path = input;
  options.output_dir = TmpDir("run_batches");
  options.scorer = Config(2, 2);
  ScorerReport report;
  ASSERT_TRUE(RunScorer(options, nullptr, &report).ok());
  ASSERT_EQ(report.batch_locations.size(), 2u);
  auto reader = RecordReader::Open(report.batch_locations[1]);
  ASSERT_TRUE(reader.ok());
  proto::TrajectoryBatch batch;
  ASSERT_TRUE(*(*reader)->NextMessage(&batch));
  EXPECT_EQ(batch.batch_index(), 1u);
  ASSERT_EQ(batch.trajectories_size(), 4);
  EXPECT_EQ(batch.trajectories(0).reward(), 1.0f);
  EXPECT_EQ(batch.trajectories(1).reward(), 0.0f);

  options.input_path = TmpDir("missing.rec");
  EXPECT_EQ(RunScorer(options, nullptr, &report).code(), absl::StatusCode::kNotFound);
}

TEST(RunScorer, ATruncatedTrajectoryFileIsDataLossNamingTheFile) {
  const std::string input = TmpDir("cut.rec");
  {
    auto writer = RecordWriter::Create(input);
    ASSERT_TRUE(writer.ok());
    for (uint32_t i = 0; i < 2; ++i) {
      ASSERT_TRUE((*writer)->WriteMessage(MakeTrajectory("g", i, "\\boxed{18}")).ok());
    }
    ASSERT_TRUE((*writer)->Close().ok());
  }
  // Cut the end marker off, as a crash while copying would.
  ASSERT_EQ(::truncate(input.c_str(), 40), 0);
  ScorerRunOptions options;
  options.input_path = input;
  options.output_dir = TmpDir("cut_batches");
  options.scorer = Config(2, 1);
  ScorerReport report;
  const absl::Status status = RunScorer(options, nullptr, &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_NE(status.message().find("cut.rec"), std::string::npos) << status;
  EXPECT_EQ(report.batches_written, 0);
}

}  // namespace
}  // namespace moerl
