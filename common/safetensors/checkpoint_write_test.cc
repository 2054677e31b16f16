// Publishing a checkpoint folder is all-or-nothing: a crash before the rename
// leaves the previous checkpoint readable and only a hidden staging folder,
// which the next write removes.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/file_util.h"
#include "common/safetensors/checkpoint_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A fresh parent folder per test, so sibling listings see only this test.
std::string FreshParent(const std::string& test) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string parent = std::string(tmp ? tmp : "/tmp") + "/" + test;
  fs::remove_all(parent);
  fs::create_directories(parent);
  return parent;
}

// Three tensors filled with `value`; with max_shard_bytes 450 they make two shards.
struct Weights {
  explicit Weights(float value) : a(100, value), b(50, value), c(10, value) {}
  std::vector<TensorToWrite> Tensors() const {
    return {{"a", Dtype::kF32, {100}, Bytes(a)}, {"b", Dtype::kF32, {50}, Bytes(b)},
            {"c", Dtype::kF32, {10}, Bytes(c)}};
  }
  static absl::Span<const uint8_t> Bytes(const std::vector<float>& v) {
    return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
  }
  std::vector<float> a, b, c;
};

CheckpointWriteOptions Sharded(const std::string& config_text) {
  CheckpointWriteOptions options;
  options.max_shard_bytes = 450;
  options.extra_files = {{"config.json", config_text}};
  return options;
}

// Every tensor of the checkpoint at `dir` holds `value`; the folder's
// config.json says `config_text`.
void ExpectCheckpointHolds(const std::string& dir, float value, const std::string& config_text) {
  auto ckpt = CheckpointDir::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ASSERT_EQ((*ckpt)->Names(), (std::vector<std::string>{"a", "b", "c"}));
  for (const std::string& name : (*ckpt)->Names()) {
    auto ref = (*ckpt)->Get(name);
    ASSERT_TRUE(ref.ok()) << ref.status();
    std::vector<float> got(ref->bytes.size() / sizeof(float));
    std::memcpy(got.data(), ref->bytes.data(), ref->bytes.size());
    for (float v : got) ASSERT_EQ(v, value) << name << " in " << dir;
  }
  absl::StatusOr<std::string> config = ReadFileToString(dir + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, config_text);
}

// Names in `parent` other than the checkpoint itself.
std::vector<std::string> Leftovers(const std::string& parent, const std::string& name) {
  std::vector<std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(parent)) {
    if (e.path().filename() != name) out.push_back(e.path().filename().string());
  }
  return out;
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(WriteCheckpointDir, ReplacesAnExistingCheckpointAsAWholeAndLeavesNothingBeside) {
  const std::string parent = FreshParent("replace");
  const std::string dir = parent + "/ckpt";
  const Weights v1(1.0f), v2(2.0f);
  ASSERT_TRUE(WriteCheckpointDir(dir, v1.Tensors(), Sharded("{\"v\": 1}")).ok());
  ExpectCheckpointHolds(dir, 1.0f, "{\"v\": 1}");
  EXPECT_EQ(FilesIn(dir).size(), 4u) << ::testing::PrintToString(FilesIn(dir));
  std::ofstream(dir + "/stray.txt") << "not part of any checkpoint";

  // Now one file: the old shards, the index and the stray file go with the old folder.
  CheckpointWriteOptions single;
  single.extra_files = {{"config.json", "{\"v\": 2}"}};
  ASSERT_TRUE(WriteCheckpointDir(dir + "/", v2.Tensors(), single).ok());
  ExpectCheckpointHolds(dir, 2.0f, "{\"v\": 2}");
  EXPECT_THAT(FilesIn(dir), ElementsAre("config.json", "model.safetensors"));
  EXPECT_THAT(Leftovers(parent, "ckpt"), IsEmpty());
}

TEST(WriteCheckpointDir, CrashBeforeTheRenameLeavesTheOldCheckpointAndTheNextWriteCleansUp) {
  const std::string parent = FreshParent("crash");
  const std::string dir = parent + "/ckpt";
  const Weights v1(1.0f), v2(2.0f), v3(3.0f);
  ASSERT_TRUE(WriteCheckpointDir(dir, v1.Tensors(), Sharded("{\"v\": 1}")).ok());

  // The writer dies (in a forked child) after staging everything, before publishing.
  CheckpointWriteOptions crashing = Sharded("{\"v\": 2}");
  crashing.before_publish = [](const std::string&) -> absl::Status { ::_exit(7); };
  EXPECT_EXIT(WriteCheckpointDir(dir, v2.Tensors(), crashing).IgnoreError(),
              ::testing::ExitedWithCode(7), "");

  ExpectCheckpointHolds(dir, 1.0f, "{\"v\": 1}");
  const std::vector<std::string> left = Leftovers(parent, "ckpt");
  ASSERT_EQ(left.size(), 1u) << ::testing::PrintToString(left);
  EXPECT_TRUE(absl::StartsWith(left[0], ".ckpt.staging-")) << left[0];
  ExpectCheckpointHolds(parent + "/" + left[0], 2.0f, "{\"v\": 2}");  // complete, never published

  ASSERT_TRUE(WriteCheckpointDir(dir, v3.Tensors(), Sharded("{\"v\": 3}")).ok());
  ExpectCheckpointHolds(dir, 3.0f, "{\"v\": 3}");
  EXPECT_THAT(Leftovers(parent, "ckpt"), IsEmpty());
}

TEST(WriteCheckpointDir, FailingBeforePublishKeepsTheOldCheckpointAndRemovesTheStagingFolder) {
  const std::string parent = FreshParent("abandon");
  const std::string dir = parent + "/ckpt";
  const Weights v1(1.0f), v2(2.0f);
  ASSERT_TRUE(WriteCheckpointDir(dir, v1.Tensors(), Sharded("{\"v\": 1}")).ok());
  std::string seen_staging;
  CheckpointWriteOptions failing = Sharded("{\"v\": 2}");
  failing.before_publish = [&](const std::string& staging) {
    seen_staging = staging;
    return absl::AbortedError("disk pulled");
  };
  const absl::Status status = WriteCheckpointDir(dir, v2.Tensors(), failing);
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(seen_staging, HasSubstr(parent + "/.ckpt.staging-"));
  ExpectCheckpointHolds(dir, 1.0f, "{\"v\": 1}");
  EXPECT_THAT(Leftovers(parent, "ckpt"), IsEmpty());
}

// The state a writer without RENAME_EXCHANGE leaves when it dies between its
// two renames: `dir` missing, the old checkpoint set aside under the dead
// writer's pid. The next write puts it back before anything else, so even a
// write that then fails leaves the old checkpoint in place.
TEST(WriteCheckpointDir, OldCheckpointSetAsideByADeadWriterIsRestoredNotRemoved) {
  const std::string parent = FreshParent("set_aside");
  const std::string dir = parent + "/ckpt";
  const Weights v1(1.0f), v2(2.0f), v3(3.0f);
  ASSERT_TRUE(WriteCheckpointDir(dir, v1.Tensors(), Sharded("{\"v\": 1}")).ok());
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  const std::string aside = parent + "/.ckpt.old-" + std::to_string(dead);
  fs::rename(dir, aside);

  CheckpointWriteOptions failing = Sharded("{\"v\": 2}");
  failing.before_publish = [](const std::string&) { return absl::AbortedError("disk pulled"); };
  EXPECT_EQ(WriteCheckpointDir(dir, v2.Tensors(), failing).code(), absl::StatusCode::kAborted);
  ExpectCheckpointHolds(dir, 1.0f, "{\"v\": 1}");
  EXPECT_THAT(Leftovers(parent, "ckpt"), IsEmpty());

  // With `dir` in place, a set-aside folder is only a leftover: removed.
  fs::create_directory(aside);
  ASSERT_TRUE(WriteCheckpointDir(dir, v3.Tensors(), Sharded("{\"v\": 3}")).ok());
  ExpectCheckpointHolds(dir, 3.0f, "{\"v\": 3}");
  EXPECT_THAT(Leftovers(parent, "ckpt"), IsEmpty());
}

TEST(WriteCheckpointDir, FirstWriteCreatesTheFolder) {
  const std::string parent = FreshParent("first");
  const Weights v1(1.0f);
  ASSERT_TRUE(WriteCheckpointDir(parent + "/new", v1.Tensors(), Sharded("{}")).ok());
  ExpectCheckpointHolds(parent + "/new", 1.0f, "{}");
  EXPECT_THAT(Leftovers(parent, "new"), IsEmpty());
}

TEST(WriteCheckpointDir, RefusesAFileInTheWayAndBadExtraFileNames) {
  const std::string parent = FreshParent("refuse");
  const Weights v1(1.0f);
  std::ofstream(parent + "/file") << "x";
  const absl::Status in_the_way = WriteCheckpointDir(parent + "/file", v1.Tensors(), Sharded("{}"));
  EXPECT_EQ(in_the_way.code(), absl::StatusCode::kFailedPrecondition) << in_the_way;
  EXPECT_THAT(std::string(in_the_way.message()), HasSubstr("exists and is not a folder"));
  EXPECT_THAT(Leftovers(parent, "file"), IsEmpty());

  for (const char* bad : {"../escape.json", "model.safetensors", ""}) {
    CheckpointWriteOptions options;
    options.extra_files = {{bad, "x"}};
    const absl::Status status = WriteCheckpointDir(parent + "/ckpt", v1.Tensors(), options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(status.message()), HasSubstr("extra checkpoint file")) << bad;
  }
  EXPECT_FALSE(fs::exists(parent + "/ckpt"));
}

}  // namespace
}  // namespace moerl
