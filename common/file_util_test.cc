#include "common/file_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

std::string TmpPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/file_util_test_" + name;
}

TEST(ReadFileToString, ReturnsEveryByteOfAFileIncludingNulsAndNoNewlineTranslation) {
  std::string bytes("line one\r\nzero\0byte\n", 20);
  bytes += std::string(200000, 'x');  // past the 64 KiB read buffer
  const std::string path = TmpPath("normal.bin");
  std::ofstream(path, std::ios::binary) << bytes;
  absl::StatusOr<std::string> read = ReadFileToString(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), bytes.size());
  EXPECT_TRUE(*read == bytes);
}

TEST(ReadFileToString, EmptyFileIsAnEmptyString) {
  const std::string path = TmpPath("empty");
  std::ofstream(path, std::ios::binary).flush();
  absl::StatusOr<std::string> read = ReadFileToString(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->empty());
}

TEST(ReadFileToString, MissingFileIsNotFoundNamingThePathAndTheReason) {
  const std::string path = TmpPath("no/such/file.json");
  absl::StatusOr<std::string> read = ReadFileToString(path, "model config");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(read.status().message()),
              HasSubstr("cannot read model config '" + path + "': No such file or directory"));
}

TEST(ReadFileToString, DirectoryIsFailedPreconditionSayingSo) {
  const std::string path = TmpPath("a_directory");
  ::mkdir(path.c_str(), 0755);
  absl::StatusOr<std::string> read = ReadFileToString(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(read.status().message()),
              HasSubstr("cannot read file '" + path + "': Is a directory"));
}

}  // namespace
}  // namespace moerl

namespace moerl {
namespace {

TEST(WriteFileSynced, WritesEveryByteAndReplacesAnOlderFile) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/written.bin";
  const std::string bytes("a\0b\nc", 5);
  ASSERT_TRUE(WriteFileSynced(path, "an older, longer content").ok());
  ASSERT_TRUE(WriteFileSynced(path, bytes).ok());
  auto read = ReadFileToString(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
}

TEST(WriteFileSynced, MissingFolderIsNotFoundNamingThePathAndTheStep) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/no/such/folder/x";
  const absl::Status status = WriteFileSynced(path, "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_NE(status.message().find("cannot create '" + path + "'"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace moerl
