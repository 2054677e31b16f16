// StatsLog: appended lines, and the lines a resumed trainer drops.
#include "trainer/stats_log.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace moerl {
namespace {

std::string TmpPath(const std::string& name) { return std::string(std::getenv("TEST_TMPDIR")) + "/" + name; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int CountLines(const std::string& text) {
  int n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

TEST(StatsLog, DropFromStepKeepsTheEarlierStepsOnly) {
  const std::string path = TmpPath("stats.jsonl");
  const StatsLog log(path);
  for (int step = 0; step < 4; ++step) ASSERT_TRUE(log.Append(step, {{"loss", 0.5 * step}}).ok());
  std::ofstream(path, std::ios::app) << "{\"step\": 4, \"loss\"";  // torn by a kill
  absl::StatusOr<int64_t> dropped = log.DropFromStep(2);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(*dropped, 3);  // steps 2 and 3, and the torn line
  const std::string kept = ReadAll(path);
  EXPECT_EQ(CountLines(kept), 2) << kept;
  EXPECT_EQ(kept.find("{\"loss\":0.0,\"step\":0,"), 0u) << kept;
  EXPECT_NE(kept.find("\"step\":1,"), std::string::npos) << kept;
  EXPECT_EQ(kept.find("\"step\":2,"), std::string::npos) << kept;
  // Appending continues after the kept lines.
  ASSERT_TRUE(log.Append(2, {{"loss", 9}}).ok());
  EXPECT_EQ(CountLines(ReadAll(path)), 3);
  // Resuming at step 0 (no checkpoint) keeps nothing.
  ASSERT_TRUE(log.DropFromStep(0).ok());
  EXPECT_EQ(ReadAll(path), "");
}

TEST(StatsLog, DropFromStepLeavesAMissingFileMissing) {
  const std::string path = TmpPath("none.jsonl");
  absl::StatusOr<int64_t> dropped = StatsLog(path).DropFromStep(3);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(*dropped, 0);
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace moerl
