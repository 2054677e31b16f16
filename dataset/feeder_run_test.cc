// The dataset_feeder binary's library calls: its configuration keys and their
// errors, the tokenizer it loads, and prompts into a record file.
#include "dataset/feeder_run.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/proto/prompt.pb.h"
#include "common/proto/trajectory.pb.h"
#include "common/transport/record_io.h"
#include "common/transport/shm_ring.h"
#include "dataset/prompt.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

constexpr char kSample[] = "dataset/testdata/sample.jsonl";  // 5 rows

std::string TmpPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = TmpPath(name);
  std::ofstream(path) << text;
  return path;
}

absl::StatusOr<FeederSettings> Load(const std::string& yaml, std::vector<std::string> overrides) {
  std::vector<std::string> args = {"--config", WriteFile("feeder.yaml", yaml)};
  args.insert(args.end(), overrides.begin(), overrides.end());
  return LoadFeederSettings(args);
}

const char kYaml[] =
    "experiment_name: gsm8k-grpo\n"
    "trial_name: trial0\n"
    "seed: 7\n"
    "total_train_epochs: 2\n"
    "train_dataset:\n"
    "  path: dataset/testdata/sample.jsonl\n"
    "  batch_size: 2\n"
    "  max_length: null\n"
    "  shuffle: true\n"
    "gconfig:\n"
    "  n_samples: 4\n"
    "dataset:\n"
    "  print_gold: false\n";

TEST(LoadFeederSettings, ReadsArealKeysIntoTheFeederConfig) {
  absl::StatusOr<FeederSettings> settings =
      Load(kYaml, {"+dataset.output_path=/tmp/p.rec", "+train_dataset.drop_last=false"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  const FeederConfig config = settings->ToFeederConfig();
  EXPECT_EQ(config.path, kSample);
  EXPECT_EQ(config.seed, 7u);
  EXPECT_EQ(config.total_train_epochs, 2u);
  EXPECT_EQ(config.batch_size, 2u);
  EXPECT_EQ(config.max_length, 0);  // null: no filter
  EXPECT_FALSE(config.drop_last);
  EXPECT_EQ(settings->output_path, "/tmp/p.rec");
  EXPECT_EQ(settings->TokenizerPath(), "");
}

TEST(LoadFeederSettings, TokenizerPathFallsBackToActorPath) {
  absl::StatusOr<FeederSettings> settings =
      Load(kYaml, {"dataset.print_gold=true", "+actor.path=/models/qwen3"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->TokenizerPath(), "/models/qwen3");
  settings = Load(kYaml, {"dataset.print_gold=true", "+actor.path=/m", "+tokenizer_path=/t"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->TokenizerPath(), "/t");
}

TEST(LoadFeederSettings, AnUnknownDatasetKeyIsAnErrorNamingItsFullPath) {
  absl::StatusOr<FeederSettings> settings = Load(kYaml, {"+dataset.rign=exp.trial.prompts"});
  ASSERT_FALSE(settings.ok());
  EXPECT_TRUE(absl::StrContains(settings.status().message(), "dataset.rign"))
      << settings.status();
  EXPECT_TRUE(absl::StrContains(settings.status().message(), "dataset.ring"))
      << settings.status();  // the closest valid key
}

TEST(LoadFeederSettings, AMisspeltTrainDatasetKeyIsAnErrorNotASilentDefault) {
  absl::StatusOr<FeederSettings> settings =
      Load(kYaml, {"dataset.print_gold=true", "+train_dataset.batchsize=4"});
  ASSERT_FALSE(settings.ok());
  EXPECT_TRUE(absl::StrContains(settings.status().message(), "train_dataset.batchsize"))
      << settings.status();
  EXPECT_TRUE(absl::StrContains(settings.status().message(), "train_dataset.batch_size"))
      << settings.status();
  // AReaL's own keys that the feeder does not use are fine.
  settings = Load(kYaml, {"dataset.print_gold=true", "+train_dataset.type=rl",
                          "+train_dataset.num_workers=4", "+train_dataset.pin_memory=true"});
  EXPECT_TRUE(settings.ok()) << settings.status();
}

TEST(LoadFeederSettings, BadValuesAreErrorsNamingTheKey) {
  struct Case {
    std::vector<std::string> overrides;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"train_dataset.batch_size=0", "dataset.print_gold=true"}, "train_dataset.batch_size"},
      {{"train_dataset.shuffle=yes", "dataset.print_gold=true"}, "train_dataset.shuffle"},
      {{"total_train_epochs=0", "dataset.print_gold=true"}, "total_train_epochs"},
      {{"~train_dataset.path", "dataset.print_gold=true"}, "train_dataset.path"},
      {{}, "exactly one of dataset.ring, dataset.output_path or dataset.print_gold"},
      {{"dataset.print_gold=true", "+dataset.output_path=x.rec"},
       "got dataset.ring='', dataset.output_path='x.rec', dataset.print_gold=true"},
      {{"dataset.print_gold=true", "+dataset.push_timeout_s=0"}, "dataset.push_timeout_s"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<FeederSettings> settings = Load(kYaml, c.overrides);
    ASSERT_FALSE(settings.ok()) << c.expected;
    EXPECT_TRUE(absl::StrContains(settings.status().message(), c.expected))
        << "expected '" << c.expected << "' in: " << settings.status();
  }
  EXPECT_FALSE(LoadFeederSettings({"dataset.print_gold=true"}).ok());  // no --config
}

TEST(LoadPromptTokenizer, FindsTheShippedSmallTokenizerAndQwenStyleDirectories) {
  absl::StatusOr<Tokenizer> small = LoadPromptTokenizer("", "");
  ASSERT_TRUE(small.ok()) << small.status();
  // A directory holding tokenizer.json, as a Qwen checkpoint does.
  const std::string dir = TmpPath("model");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  absl::StatusOr<std::string> bytes = ReadFileToString(kSmallTokenizerRunfile);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  std::ofstream(dir + "/tokenizer.json", std::ios::binary) << *bytes;
  absl::StatusOr<Tokenizer> from_dir = LoadPromptTokenizer(dir, "");
  ASSERT_TRUE(from_dir.ok()) << from_dir.status();
  EXPECT_EQ(from_dir->Encode("Tom has 3 apples."), small->Encode("Tom has 3 apples."));

  absl::StatusOr<Tokenizer> missing = LoadPromptTokenizer(TmpPath("nope.json"), "");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "nope.json")) << missing.status();
}

// The feeder alone: prompts into a record file, read back with RecordReader.
TEST(RunFeeder, WritesChatTemplatedTokenizedPromptsIntoARecordFile) {
  absl::StatusOr<FeederSettings> settings =
      Load(kYaml, {"dataset.print_gold=false", "+dataset.output_path=" + TmpPath("p.rec"),
                   "train_dataset.batch_size=1"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  absl::StatusOr<Tokenizer> tokenizer = LoadPromptTokenizer("", "");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  FeederReport report;
  ASSERT_TRUE(RunFeeder(*settings, *tokenizer, nullptr, &report).ok());
  EXPECT_EQ(report.prompts_published, 10);  // 5 rows x 2 epochs
  EXPECT_TRUE(report.finished);

  absl::StatusOr<std::unique_ptr<RecordReader>> reader = RecordReader::Open(TmpPath("p.rec"));
  ASSERT_TRUE(reader.ok()) << reader.status();
  ChatOptions chat;
  chat.enable_thinking = false;
  proto::Prompt prompt;
  int count = 0;
  while (true) {
    absl::StatusOr<bool> more = (*reader)->NextMessage(&prompt);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    ++count;
    EXPECT_EQ(prompt.epoch(), count <= 5 ? 0u : 1u);
    EXPECT_FALSE(prompt.gold_answer().empty());
    EXPECT_TRUE(absl::StartsWith(prompt.text(), "<|im_start|>user\n")) << prompt.text();
    EXPECT_TRUE(absl::EndsWith(prompt.text(), std::string(kGsm8kInstruction) +
                                                  "<|im_end|>\n<|im_start|>assistant\n"
                                                  "<think>\n\n</think>\n\n"))
        << prompt.text();
    const std::vector<int32_t> expected = tokenizer->Encode(prompt.text());
    EXPECT_EQ(std::vector<int32_t>(prompt.tokens().begin(), prompt.tokens().end()), expected);
    // The markers are single added tokens, not spelled out byte by byte.
    EXPECT_EQ(prompt.tokens(0), *tokenizer->TokenToId("<|im_start|>"));
  }
  EXPECT_EQ(count, 10);
}

// Batch files holding these group ids, one group of two samples each.
void WriteBatchFile(const std::string& path, const std::vector<std::string>& group_ids) {
  proto::TrajectoryBatch batch;
  batch.set_format_version(1);
  batch.set_group_size(2);
  for (const std::string& id : group_ids) {
    for (int s = 0; s < 2; ++s) {
      proto::Trajectory* t = batch.add_trajectories();
      t->set_format_version(2);
      t->set_group_id(id);
      t->set_sample_index(s);
      t->add_prompt_tokens(5);
      t->add_output_tokens(10 + s);
      t->add_output_logprobs(-0.5f);
      t->add_output_versions(0);
      t->set_reward(s);
      t->set_scored(true);
    }
  }
  absl::StatusOr<std::unique_ptr<RecordWriter>> writer = RecordWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->WriteMessage(batch).ok());
  ASSERT_TRUE((*writer)->Close().ok());
}

std::vector<std::string> PublishedGroupIds(const std::string& path) {
  std::vector<std::string> ids;
  absl::StatusOr<std::unique_ptr<RecordReader>> reader = RecordReader::Open(path);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return ids;
  proto::Prompt prompt;
  while (true) {
    absl::StatusOr<bool> more = (*reader)->NextMessage(&prompt);
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) break;
    ids.push_back(absl::StrCat(prompt.id(), "@", prompt.epoch()));
  }
  return ids;
}

// Resume: the groups already in batch files 000000.rec, 000001.rec, ... are
// not published again; every other position is, in the original order, and
// a file after a missing number is not read (the trainer never reaches it).
TEST(RunFeeder, SkipsTheGroupsAlreadyInBatchFiles) {
  absl::StatusOr<Tokenizer> tokenizer = LoadPromptTokenizer("", "");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<FeederSettings> full =
      Load(kYaml, {"+dataset.output_path=" + TmpPath("all.rec"), "train_dataset.batch_size=1"});
  ASSERT_TRUE(full.ok()) << full.status();
  FeederReport report;
  ASSERT_TRUE(RunFeeder(*full, *tokenizer, nullptr, &report).ok());
  const std::vector<std::string> all = PublishedGroupIds(TmpPath("all.rec"));
  ASSERT_EQ(all.size(), 10u);

  const std::string dir = TmpPath("batches");
  ::mkdir(dir.c_str(), 0755);
  WriteBatchFile(dir + "/000000.rec", {all[0], all[2]});
  WriteBatchFile(dir + "/000001.rec", {all[6]});
  WriteBatchFile(dir + "/000003.rec", {all[1]});  // after the gap: not trained, not skipped
  absl::StatusOr<FeederSettings> resumed =
      Load(kYaml, {"+dataset.output_path=" + TmpPath("resumed.rec"), "train_dataset.batch_size=1",
                   "+dataset.skip_batches_dir=" + dir});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_TRUE(RunFeeder(*resumed, *tokenizer, nullptr, &report).ok());
  EXPECT_EQ(report.prompts_published, 7);
  EXPECT_EQ(report.prompts_skipped, 3);
  EXPECT_TRUE(report.finished);
  std::vector<std::string> want = all;
  want.erase(want.begin() + 6);
  want.erase(want.begin() + 2);
  want.erase(want.begin());
  EXPECT_EQ(PublishedGroupIds(TmpPath("resumed.rec")), want);

  // A folder that does not exist holds no groups.
  absl::StatusOr<FeederSettings> fresh =
      Load(kYaml, {"+dataset.output_path=" + TmpPath("fresh.rec"), "train_dataset.batch_size=1",
                   "+dataset.skip_batches_dir=" + TmpPath("no-such-folder")});
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_TRUE(RunFeeder(*fresh, *tokenizer, nullptr, &report).ok());
  EXPECT_EQ(PublishedGroupIds(TmpPath("fresh.rec")), all);

  // A damaged batch file stops the feeder, naming the file and the key.
  WriteFile("batches/000002.rec", "not a record file");
  absl::StatusOr<FeederSettings> damaged =
      Load(kYaml, {"+dataset.output_path=" + TmpPath("damaged.rec"), "train_dataset.batch_size=1",
                   "+dataset.skip_batches_dir=" + dir});
  ASSERT_TRUE(damaged.ok()) << damaged.status();
  const absl::Status status = RunFeeder(*damaged, *tokenizer, nullptr, &report);
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(absl::StrContains(status.message(), "000002.rec")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "dataset.skip_batches_dir")) << status;
}

// The feeder usually waits on a full ring; SIGTERM must still stop it
// promptly, close its producer and say where to resume.
TEST(RunFeeder, AStopWhileTheRingIsFullEndsCleanlyWithTheResumePosition) {
  const std::string name = *ShmRing::SegmentName(
      "feedertest", absl::StrCat("stop-", ::getpid()), "prompts");
  ShmRing::CreateOptions ring_options;
  ring_options.capacity_bytes = 4096;  // the smallest ring: a dozen prompts
  ring_options.reclaim_stale = true;
  ASSERT_TRUE(ShmRing::Create(name, ring_options).ok());
  absl::StatusOr<std::unique_ptr<ShmRing>> consumer = ShmRing::Open(name, RingRole::kConsumer);
  ASSERT_TRUE(consumer.ok()) << consumer.status();

  absl::StatusOr<FeederSettings> settings =
      Load(kYaml, {"dataset.print_gold=false", "+dataset.ring=" + name,
                   "+dataset.push_timeout_s=60", "train_dataset.batch_size=1",
                   "total_train_epochs=50"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  absl::StatusOr<Tokenizer> tokenizer = LoadPromptTokenizer("", "");
  ASSERT_TRUE(tokenizer.ok());
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(300));
    stop = true;
  });
  FeederReport report;
  const absl::Time start = absl::Now();
  const absl::Status status = RunFeeder(*settings, *tokenizer, [&] { return stop.load(); }, &report);
  const absl::Duration took = absl::Now() - start;
  stopper.join();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_LT(took, absl::Seconds(5));
  EXPECT_FALSE(report.finished);
  EXPECT_GT(report.prompts_published, 0);
  EXPECT_LT(report.prompts_published, 250);
  EXPECT_EQ(report.next.epoch * 5 + report.next.index,
            static_cast<uint64_t>(report.prompts_published));
  // What was published is there, then a clean end of stream.
  int64_t popped = 0;
  while (true) {
    absl::StatusOr<RingMessage> m = (*consumer)->Pop(absl::Seconds(5));
    if (absl::IsOutOfRange(m.status())) break;
    ASSERT_TRUE(m.ok()) << m.status();
    ++popped;
  }
  EXPECT_EQ(popped, report.prompts_published);
  EXPECT_EQ((*consumer)->Stats().producers_died, 0u);
  consumer->reset();
  EXPECT_TRUE(ShmRing::Remove(name).ok());
}

TEST(RunFeeder, AMissingRingIsAnErrorNamingTheKey) {
  absl::StatusOr<FeederSettings> settings =
      Load(kYaml, {"dataset.print_gold=false", "+dataset.ring=nobody.here.prompts"});
  ASSERT_TRUE(settings.ok()) << settings.status();
  absl::StatusOr<Tokenizer> tokenizer = LoadPromptTokenizer("", "");
  ASSERT_TRUE(tokenizer.ok());
  FeederReport report;
  const absl::Status status = RunFeeder(*settings, *tokenizer, nullptr, &report);
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(absl::StrContains(status.message(), "dataset.ring=nobody.here.prompts")) << status;
}

}  // namespace
}  // namespace moerl
