#include "common/batch_source.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_format.h"
#include "common/transport/record_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

std::string FreshDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

proto::TrajectoryBatch MakeBatch(int groups, int group_size) {
  proto::TrajectoryBatch batch;
  batch.set_format_version(1);
  batch.set_group_size(group_size);
  for (int g = 0; g < groups; ++g) {
    for (int s = 0; s < group_size; ++s) {
      proto::Trajectory* t = batch.add_trajectories();
      t->set_format_version(2);
      t->set_group_id("g" + std::to_string(g));
      t->set_sample_index(s);
      for (int i = 0; i < 3; ++i) t->add_prompt_tokens(5 + i);
      for (int i = 0; i < 4; ++i) {
        t->add_output_tokens(10 + i + s);
        t->add_output_logprobs(-0.5f);
        t->add_output_versions(0);
      }
      t->set_reward(s % 2);
      t->set_scored(true);
    }
  }
  return batch;
}

std::string WriteBatch(const std::string& dir, int index, const proto::TrajectoryBatch& batch) {
  const std::string path = absl::StrFormat("%s/%06d.rec", dir, index);
  auto writer = RecordWriter::Create(path);
  EXPECT_TRUE(writer.ok());
  EXPECT_TRUE((*writer)->WriteMessage(batch).ok());
  EXPECT_TRUE((*writer)->Close().ok());
  return path;
}

TEST(BatchSource, FixedFolderReadsInOrderAndStopsAtTheFirstGap) {
  const std::string dir = FreshDir("fixed");
  for (int i = 0; i < 3; ++i) {
    proto::TrajectoryBatch b = MakeBatch(1 + i, 2);
    b.set_batch_index(i);
    WriteBatch(dir, i, b);
  }
  WriteBatch(dir, 4, MakeBatch(1, 2));  // after a gap: not read
  BatchSource source({.dir = dir, .follow = false, .vocab_size = 32});
  proto::TrajectoryBatch batch;
  for (int i = 0; i < 3; ++i) {
    auto got = source.Next(nullptr, &batch);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(*got);
    EXPECT_EQ(batch.batch_index(), static_cast<uint64_t>(i));
    EXPECT_EQ(batch.trajectories_size(), 2 * (i + 1));
  }
  auto got = source.Next(nullptr, &batch);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
  EXPECT_EQ(source.next_index(), 3);
}

TEST(BatchSource, StartIndexResumes) {
  const std::string dir = FreshDir("start");
  for (int i = 0; i < 3; ++i) {
    proto::TrajectoryBatch b = MakeBatch(1, 2);
    b.set_batch_index(i);
    WriteBatch(dir, i, b);
  }
  BatchSource source({.dir = dir, .start_index = 2, .follow = false});
  proto::TrajectoryBatch batch;
  ASSERT_TRUE(*source.Next(nullptr, &batch));
  EXPECT_EQ(batch.batch_index(), 2u);
}

TEST(BatchSource, FollowWaitsForTheNextFileAndStopsOnRequest) {
  const std::string dir = FreshDir("follow");
  BatchSource source({.dir = dir, .follow = true, .poll_interval = absl::Milliseconds(5)});
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(50));
    WriteBatch(dir, 0, MakeBatch(1, 2));
  });
  proto::TrajectoryBatch batch;
  auto got = source.Next([] { return false; }, &batch);
  writer.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got);
  std::atomic<int> polls{0};
  got = source.Next([&] { return ++polls > 3; }, &batch);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
  EXPECT_EQ(source.next_index(), 1);
}

TEST(BatchSource, TruncatedFileNamesFileAndOffsetAndDoesNotAdvance) {
  const std::string dir = FreshDir("truncated");
  const std::string path = WriteBatch(dir, 0, MakeBatch(2, 2));
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 25);
  BatchSource source({.dir = dir, .follow = false});
  proto::TrajectoryBatch batch;
  auto got = source.Next(nullptr, &batch);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("000000.rec"));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("byte 16: torn record"));
  EXPECT_EQ(source.next_index(), 0);
  EXPECT_EQ(batch.trajectories_size(), 0);
}

TEST(BatchSource, CorruptByteIsAnError) {
  const std::string dir = FreshDir("corrupt");
  const std::string path = WriteBatch(dir, 0, MakeBatch(2, 2));
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x7f');
  }
  proto::TrajectoryBatch batch;
  const absl::Status s = BatchSource::ReadBatchFile(path, 0, &batch);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr(path));
}

struct BadCase {
  const char* name;
  std::function<void(proto::TrajectoryBatch*)> damage;
  const char* field;
};

TEST(BatchSource, BadRecordsNameFileRecordAndField) {
  const std::vector<BadCase> cases = {
      {"batch_version", [](proto::TrajectoryBatch* b) { b->set_format_version(9); }, "format_version is 9"},
      {"traj_version",
       [](proto::TrajectoryBatch* b) { b->mutable_trajectories(1)->set_format_version(3); },
       "trajectories[1] (group 'g0' sample 1): format_version is 3"},
      {"logprobs_length",
       [](proto::TrajectoryBatch* b) { b->mutable_trajectories(2)->add_output_logprobs(-1); },
       "trajectories[2] (group 'g1' sample 0): output_logprobs has 5 entries, output_tokens 4"},
      {"versions_length",
       [](proto::TrajectoryBatch* b) { b->mutable_trajectories(3)->mutable_output_versions()->RemoveLast(); },
       "output_versions has 3 entries"},
      {"oov", [](proto::TrajectoryBatch* b) { b->mutable_trajectories(0)->set_output_tokens(2, 32); },
       "output_tokens[2] = 32 is outside the vocabulary [0, 32)"},
      {"empty", [](proto::TrajectoryBatch* b) { b->clear_trajectories(); }, "trajectories is empty"},
      {"group_size_zero", [](proto::TrajectoryBatch* b) { b->set_group_size(0); }, "group_size is 0"},
      {"split_group", [](proto::TrajectoryBatch* b) { b->mutable_trajectories(1)->set_group_id("g9"); },
       "group_id differs"},
      {"unscored", [](proto::TrajectoryBatch* b) { b->mutable_trajectories(0)->set_scored(false); },
       "scored is false"},
      {"routes", [](proto::TrajectoryBatch* b) {
         auto* t = b->mutable_trajectories(0);
         t->set_routed_experts_layers(2);
         t->set_routed_experts_top_k(2);
         t->add_routed_experts(1);
       }, "routed_experts has 1 ids"},
  };
  for (const BadCase& c : cases) {
    const std::string dir = FreshDir(std::string("bad_") + c.name);
    proto::TrajectoryBatch batch = MakeBatch(2, 2);
    c.damage(&batch);
    WriteBatch(dir, 0, batch);
    BatchSource source({.dir = dir, .follow = false, .vocab_size = 32});
    proto::TrajectoryBatch out;
    auto got = source.Next(nullptr, &out);
    ASSERT_FALSE(got.ok()) << c.name;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    const std::string message(got.status().message());
    EXPECT_THAT(message, HasSubstr("000000.rec (record 0 at byte 16)")) << c.name;
    EXPECT_THAT(message, HasSubstr(c.field)) << c.name;
    EXPECT_EQ(out.trajectories_size(), 0) << c.name;
  }
}

TEST(BatchSource, TwoRecordsInOneFileAreAnError) {
  const std::string dir = FreshDir("two");
  auto writer = RecordWriter::Create(dir + "/000000.rec");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->WriteMessage(MakeBatch(1, 2)).ok());
  ASSERT_TRUE((*writer)->WriteMessage(MakeBatch(1, 2)).ok());
  ASSERT_TRUE((*writer)->Close().ok());
  proto::TrajectoryBatch batch;
  const absl::Status s = BatchSource::ReadBatchFile(dir + "/000000.rec", 0, &batch);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("second record"));
}

}  // namespace
}  // namespace moerl
