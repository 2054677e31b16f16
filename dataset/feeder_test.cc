#include "dataset/feeder.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto/prompt.pb.h"
#include "common/testing/ring_channel.h"
#include "common/transport/in_process_ring.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

// Collects what the feeder publishes.
class VectorSink : public PromptSink {
 public:
  absl::Status Publish(const proto::Prompt& prompt) override {
    prompts.push_back(prompt);
    return absl::OkStatus();
  }
  absl::Status Close() override {
    closed = true;
    return absl::OkStatus();
  }
  std::vector<proto::Prompt> prompts;
  bool closed = false;
};

std::string TmpPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

// n rows: "question i" with gold answer i; row 3's question is long.
std::string WriteRows(const std::string& name, int n) {
  const std::string path = TmpPath(name);
  std::ofstream out(path);
  for (int i = 0; i < n; ++i) {
    const std::string question = i == 3 ? std::string(200, 'x') : absl::StrCat("question ", i);
    out << "{\"question\": \"" << question << "\", \"answer\": \"work\\n#### " << i << "\"}\n";
  }
  return path;
}

absl::StatusOr<Gsm8kFeeder> MakeFeeder(const FeederConfig& config) {
  return Gsm8kFeeder::Create(config, ByteTokenize, [](absl::string_view u) {
    return RenderQwenChatPrompt(u);
  });
}

FeederConfig BaseConfig(const std::string& path) {
  FeederConfig config;
  config.path = path;
  config.seed = 42;
  config.batch_size = 2;
  config.total_train_epochs = 2;
  return config;
}

TEST(Gsm8kFeeder, PublishesRenderedTokenizedPromptsForEveryEpoch) {
  FeederConfig config = BaseConfig(WriteRows("five.jsonl", 5));
  absl::StatusOr<Gsm8kFeeder> feeder = MakeFeeder(config);
  ASSERT_TRUE(feeder.ok()) << feeder.status();
  VectorSink sink;
  FeederReport report;
  ASSERT_TRUE(feeder->Run(sink, &report).ok());
  EXPECT_TRUE(sink.closed);
  EXPECT_TRUE(report.finished);
  ASSERT_EQ(sink.prompts.size(), 8u);  // drop_last: 4 of 5 rows per epoch, 2 epochs
  EXPECT_EQ(report.next, (DataPosition{2, 0}));
  const proto::Prompt& p = sink.prompts[5];
  EXPECT_EQ(p.epoch(), 1u);
  EXPECT_EQ(p.index(), 1u);
  EXPECT_EQ(p.id(), absl::StrCat("gsm8k/train/", p.source_row()));
  EXPECT_EQ(p.gold_answer(), absl::StrCat(p.source_row()));
  const std::string user = Gsm8kUserContent(absl::StrCat("question ", p.source_row()));
  EXPECT_EQ(p.text(), RenderQwenChatPrompt(user));
  EXPECT_EQ(p.tokens_size(), static_cast<int>(p.text().size()));
  EXPECT_EQ(p.format_version(), 1u);
}

TEST(Gsm8kFeeder, MaxLengthCountsUserContentTokensAndDropsLongRows) {
  FeederConfig config = BaseConfig(WriteRows("long.jsonl", 5));
  config.max_length = static_cast<int64_t>(Gsm8kUserContent("question 0").size());
  absl::StatusOr<Gsm8kFeeder> feeder = MakeFeeder(config);
  ASSERT_TRUE(feeder.ok()) << feeder.status();
  VectorSink sink;
  FeederReport report;
  ASSERT_TRUE(feeder->Run(sink, &report).ok());
  EXPECT_EQ(report.rows_too_long, 1);
  EXPECT_EQ(report.prompts_per_epoch, 4u);
  for (const proto::Prompt& p : sink.prompts) EXPECT_NE(p.source_row(), 3u);
}

TEST(Gsm8kFeeder, RestartFromReportedPositionContinuesExactly) {
  FeederConfig config = BaseConfig(WriteRows("resume.jsonl", 7));
  config.drop_last = false;
  config.total_train_epochs = 3;
  VectorSink whole;
  FeederReport report;
  ASSERT_TRUE(MakeFeeder(config)->Run(whole, &report).ok());
  ASSERT_EQ(whole.prompts.size(), 21u);

  for (int64_t stop_after : {0, 1, 6, 7, 13, 20}) {
    FeederConfig first = config;
    first.max_prompts = stop_after;
    VectorSink part1, part2;
    FeederReport r1, r2;
    ASSERT_TRUE(MakeFeeder(first)->Run(part1, &r1).ok());
    EXPECT_FALSE(r1.finished);
    FeederConfig second = config;
    second.start = r1.next;
    ASSERT_TRUE(MakeFeeder(second)->Run(part2, &r2).ok());
    EXPECT_TRUE(r2.finished);
    ASSERT_EQ(part1.prompts.size() + part2.prompts.size(), 21u) << "stop after " << stop_after;
    for (size_t i = 0; i < 21; ++i) {
      const proto::Prompt& got =
          i < part1.prompts.size() ? part1.prompts[i] : part2.prompts[i - part1.prompts.size()];
      EXPECT_EQ(got.SerializeAsString(), whole.prompts[i].SerializeAsString())
          << "prompt " << i << " after stopping at " << stop_after;
    }
  }
}

TEST(Gsm8kFeeder, SameSeedSameOrderOtherSeedOtherOrder) {
  FeederConfig config = BaseConfig(WriteRows("seeds.jsonl", 20));
  auto ids = [](const FeederConfig& c) {
    VectorSink sink;
    FeederReport report;
    EXPECT_TRUE(MakeFeeder(c)->Run(sink, &report).ok());
    std::vector<uint64_t> rows;
    for (const proto::Prompt& p : sink.prompts) rows.push_back(p.source_row());
    return rows;
  };
  FeederConfig other = config;
  other.seed = 43;
  EXPECT_EQ(ids(config), ids(config));
  EXPECT_NE(ids(config), ids(other));
}

TEST(Gsm8kFeeder, BadConfigAndEmptyDataAreErrorsThatNameTheKey) {
  FeederConfig config = BaseConfig(WriteRows("cfg.jsonl", 3));
  config.batch_size = 0;
  EXPECT_EQ(MakeFeeder(config).status().message(),
            "train_dataset.batch_size must be positive, got 0");
  config.batch_size = 4;  // 3 rows, drop_last: no full batch
  EXPECT_EQ(MakeFeeder(config).status().code(), absl::StatusCode::kFailedPrecondition);
  config.batch_size = 1;
  config.max_length = 1;
  EXPECT_EQ(MakeFeeder(config).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Gsm8kFeeder, MalformedRowsFailOrAreSkippedAndCounted) {
  const std::string path = TmpPath("malformed.jsonl");
  {
    std::ofstream out(path);
    out << "{\"question\": \"a\", \"answer\": \"#### 1\"}\n{oops\n"
        << "{\"question\": \"b\", \"answer\": \"#### 2\"}\n";
  }
  FeederConfig config = BaseConfig(path);
  config.batch_size = 1;
  EXPECT_EQ(MakeFeeder(config).status().message(), path + ":2: not valid JSON");
  config.skip_malformed = true;
  absl::StatusOr<Gsm8kFeeder> feeder = MakeFeeder(config);
  ASSERT_TRUE(feeder.ok()) << feeder.status();
  VectorSink sink;
  FeederReport report;
  ASSERT_TRUE(feeder->Run(sink, &report).ok());
  EXPECT_EQ(report.rows_malformed_skipped, 1);
  EXPECT_EQ(report.rows_read, 3);
  EXPECT_EQ(sink.prompts.size(), 4u);
}

TEST(Gsm8kFeeder, PublishesIntoARingAndClosesTheProducer) {
  FeederConfig config = BaseConfig(WriteRows("ring.jsonl", 4));
  auto [state, producer, consumer] = NewRingPair(DeliveryMode::kPlain);
  RingPromptSink sink(producer.get(), absl::Seconds(1));
  FeederReport report;
  ASSERT_TRUE(MakeFeeder(config)->Run(sink, &report).ok());
  int received = 0;
  while (true) {
    absl::StatusOr<RingMessage> m = consumer->Pop(absl::Seconds(1));
    if (absl::IsOutOfRange(m.status())) break;
    ASSERT_TRUE(m.ok()) << m.status();
    proto::Prompt prompt;
    ASSERT_TRUE(prompt.ParseFromString(m->payload));
    EXPECT_FALSE(prompt.tokens().empty());
    ++received;
  }
  EXPECT_EQ(received, 8);
}

TEST(Gsm8kFeeder, AFullRingIsAnErrorThatSaysWhereItStopped) {
  FeederConfig config = BaseConfig(WriteRows("full.jsonl", 4));
  // Room for exactly the first three prompts.
  uint64_t capacity = 0;
  for (uint64_t i = 0; i < 3; ++i) {
    capacity += MakeFeeder(config)->PromptAt({0, i}).ByteSizeLong() + InProcessRing::kOverheadBytes;
  }
  auto state = NewChannel(DeliveryMode::kPlain, capacity);
  std::unique_ptr<MessageRing> producer = InProcessRing::Attach(state, RingRole::kProducer);
  RingPromptSink sink(producer.get(), absl::Milliseconds(5));
  FeederReport report;
  absl::Status status = MakeFeeder(config)->Run(sink, &report);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(report.prompts_published, 3);
  EXPECT_EQ(report.next, (DataPosition{0, 3}));
}

}  // namespace
}  // namespace moerl
