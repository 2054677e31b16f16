#include "common/weights_dir.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moerl {
namespace {

std::string FreshDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void MakeVersion(const std::string& dir, int64_t v) {
  std::filesystem::create_directories(VersionDir(dir, v));
  std::ofstream(VersionDir(dir, v) + "/config.json") << "{}";
}

TEST(WeightsDir, LatestRoundTripsAndNeedsItsFolder) {
  const std::string dir = FreshDir("latest");
  EXPECT_EQ(ReadLatestVersion(dir).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(WriteLatestVersion(dir, 3).code(), absl::StatusCode::kFailedPrecondition);
  MakeVersion(dir, 3);
  ASSERT_TRUE(WriteLatestVersion(dir, 3).ok());
  EXPECT_EQ(*ReadLatestVersion(dir), 3);
  std::ifstream in(dir + "/LATEST");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "3\n");
  EXPECT_EQ(VersionDir(dir, 3), dir + "/v3");
}

TEST(WeightsDir, MalformedLatestIsInvalidArgumentNamingTheText) {
  const std::string dir = FreshDir("bad_latest");
  for (const char* text : {"", "x\n", "-1\n", "3 \n", "3\n\n"}) {
    std::ofstream(dir + "/LATEST") << text;
    const auto v = ReadLatestVersion(dir);
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << "text: " << text;
    EXPECT_NE(v.status().message().find("LATEST"), std::string::npos);
  }
  std::ofstream(dir + "/LATEST") << "12";
  EXPECT_EQ(*ReadLatestVersion(dir), 12);
}

TEST(WeightsDir, PruneKeepsNewestAndSkipsPinned) {
  const std::string dir = FreshDir("prune");
  for (int v = 0; v < 6; ++v) MakeVersion(dir, v);
  ASSERT_TRUE(WriteLatestVersion(dir, 5).ok());
  auto pin = VersionPin::Acquire(dir, 1);
  ASSERT_TRUE(pin.ok()) << pin.status();
  auto removed = PruneVersions(dir, 3);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(*ListVersions(dir), (std::vector<int64_t>{1, 3, 4, 5}));
  // The pinned folder is still readable; once released it goes.
  EXPECT_TRUE(std::filesystem::exists(pin->path() + "/config.json"));
  { VersionPin released = std::move(*pin); }
  removed = PruneVersions(dir, 3);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, (std::vector<int64_t>{1}));
  EXPECT_EQ(*ListVersions(dir), (std::vector<int64_t>{3, 4, 5}));
  // No hidden leftovers.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 4);  // v3 v4 v5 LATEST
}

TEST(WeightsDir, PruneNeverRemovesLatest) {
  const std::string dir = FreshDir("prune_latest");
  for (int v = 0; v < 4; ++v) MakeVersion(dir, v);
  ASSERT_TRUE(WriteLatestVersion(dir, 0).ok());
  auto removed = PruneVersions(dir, 1);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(*ListVersions(dir), (std::vector<int64_t>{0, 3}));
}

TEST(WeightsDir, RemoveAbandonedEntriesTakesOnlyDeadWritersLeftovers) {
  const std::string dir = FreshDir("abandoned");
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // `child` is now a pid nobody runs
  const std::string dead = std::to_string(child), alive = std::to_string(::getpid());
  MakeVersion(dir, 1);
  for (const std::string& name : {".v2.removing-" + dead, ".v3.staging-" + dead, ".v4.staging-" + alive,
                                  ".v5.old-" + dead}) {
    std::filesystem::create_directories(dir + "/" + name + "/sub");
  }
  std::ofstream(dir + "/.LATEST.tmp-" + dead) << "1\n";
  auto removed = RemoveAbandonedEntries(dir);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, (std::vector<std::string>{".LATEST.tmp-" + dead, ".v2.removing-" + dead,
                                                ".v3.staging-" + dead}));
  EXPECT_TRUE(std::filesystem::exists(dir + "/.v4.staging-" + alive));  // a live writer's
  EXPECT_TRUE(std::filesystem::exists(dir + "/.v5.old-" + dead));       // restored by the next write of v5
  EXPECT_TRUE(std::filesystem::exists(VersionDir(dir, 1)));
  auto none = RemoveAbandonedEntries(dir + "/missing");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(WeightsDir, PinOfMissingVersionIsNotFound) {
  const std::string dir = FreshDir("pin_missing");
  EXPECT_EQ(VersionPin::Acquire(dir, 7).status().code(), absl::StatusCode::kNotFound);
}

TEST(WeightsDir, PinnedFolderSurvivesPruneAcrossProcesses) {
  const std::string dir = FreshDir("pin_fork");
  for (int v = 0; v < 3; ++v) MakeVersion(dir, v);
  ASSERT_TRUE(WriteLatestVersion(dir, 2).ok());
  auto pin = VersionPin::Acquire(dir, 0);
  ASSERT_TRUE(pin.ok());
  const pid_t child = fork();
  if (child == 0) {
    // The child's prune must see the parent's shared lock.
    auto removed = PruneVersions(dir, 1);
    _exit(removed.ok() && removed->size() == 1 && (*removed)[0] == 1 ? 0 : 1);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  EXPECT_EQ(*ListVersions(dir), (std::vector<int64_t>{0, 2}));
}

}  // namespace
}  // namespace moerl
