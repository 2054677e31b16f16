#include "common/transport/record_io.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/proto/trajectory.pb.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::vector<std::string> ReadRecords(RecordReader* reader) {
  std::vector<std::string> out;
  std::string record;
  while (true) {
    absl::StatusOr<bool> more = reader->Next(&record);
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) break;
    out.push_back(record);
  }
  return out;
}

TEST(RecordIo, RoundTripsRecordsOfManySizes) {
  const std::string path = TempPath("round_trip.rec");
  std::vector<std::string> records = {"", "a", std::string(1000, 'b'),
                                      std::string(3 << 20, 'c'), "tail"};
  auto writer = RecordWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (const std::string& r : records) ASSERT_TRUE((*writer)->Write(r).ok());
  ASSERT_TRUE((*writer)->Close().ok());

  auto reader = RecordReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(ReadRecords(reader->get()), records);
  // A clean end stays a clean end.
  std::string record;
  EXPECT_FALSE(*(*reader)->Next(&record));
}

TEST(RecordIo, RoundTripsProtobufMessages) {
  const std::string path = TempPath("messages.rec");
  auto writer = RecordWriter::Create(path);
  ASSERT_TRUE(writer.ok());
  for (int i = 0; i < 10; ++i) {
    proto::Trajectory t;
    t.set_format_version(1);
    t.set_prompt_id("p" + std::to_string(i));
    t.add_output_tokens(i);
    t.add_output_logprobs(-0.5f * i);
    ASSERT_TRUE((*writer)->WriteMessage(t).ok());
  }
  ASSERT_TRUE((*writer)->Close().ok());
  auto reader = RecordReader::Open(path);
  ASSERT_TRUE(reader.ok());
  proto::Trajectory t;
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<bool> more = (*reader)->NextMessage(&t);
    ASSERT_TRUE(more.ok() && *more) << more.status();
    EXPECT_EQ(t.prompt_id(), "p" + std::to_string(i));
    EXPECT_EQ(t.output_tokens(0), i);
    EXPECT_FLOAT_EQ(t.output_logprobs(0), -0.5f * i);
  }
  EXPECT_FALSE(*(*reader)->NextMessage(&t));
}

TEST(RecordIo, FileAppearsOnlyAtCloseAndTemporaryIsGone) {
  const std::string path = TempPath("atomic.rec");
  auto writer = RecordWriter::Create(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write("x").ok());
  const std::string temp = (*writer)->temporary_path();
  EXPECT_TRUE(Exists(temp));
  EXPECT_FALSE(Exists(path));
  ASSERT_TRUE((*writer)->Close().ok());
  EXPECT_TRUE(Exists(path));
  EXPECT_FALSE(Exists(temp));
  EXPECT_FALSE((*writer)->Write("late").ok());
}

TEST(RecordIo, WriterDroppedWithoutCloseLeavesNothing) {
  const std::string path = TempPath("abandoned.rec");
  std::string temp;
  {
    auto writer = RecordWriter::Create(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write("x").ok());
    temp = (*writer)->temporary_path();
  }
  EXPECT_FALSE(Exists(path));
  EXPECT_FALSE(Exists(temp));
}

TEST(RecordIo, EmptyFileHasNoRecords) {
  const std::string path = TempPath("empty.rec");
  auto writer = RecordWriter::Create(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Close().ok());
  auto reader = RecordReader::Open(path);
  ASSERT_TRUE(reader.ok());
  EXPECT_TRUE(ReadRecords(reader->get()).empty());
}

TEST(RecordIo, MissingFileIsNotFound) {
  auto reader = RecordReader::Open(TempPath("no_such_file.rec"));
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kNotFound) << reader.status();
}

TEST(RecordIo, OtherFilesAreRejectedAsNotRecordFiles) {
  const std::string path = TempPath("not_a_record_file.txt");
  WriteAll(path, "{\"question\": \"what is 2+2?\"}\n");
  auto reader = RecordReader::Open(path);
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kInvalidArgument) << reader.status();
  EXPECT_NE(reader.status().message().find("not a moerl record file"), std::string::npos);
}

TEST(RecordIo, RecoveryModeKeepsTheValidPrefixOfATruncatedFile) {
  const std::string path = TempPath("truncated.rec");
  auto writer = RecordWriter::Create(path);
  ASSERT_TRUE(writer.ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*writer)->Write(std::string(100, 'a' + i)).ok());
  ASSERT_TRUE((*writer)->Close().ok());
  std::string bytes = ReadAll(path);
  // Cut in the middle of the fourth record (16 + 3 * 112 + 50).
  bytes.resize(16 + 3 * 112 + 50);
  WriteAll(path, bytes);

  auto strict = RecordReader::Open(path);
  ASSERT_TRUE(strict.ok());
  std::string record;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(*(*strict)->Next(&record));
  absl::StatusOr<bool> torn = (*strict)->Next(&record);
  EXPECT_EQ(torn.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(torn.status().message().find("byte 352: torn record"), std::string::npos)
      << torn.status();

  auto lenient = RecordReader::Open(path, RecordReader::Options{.recover_truncated_tail = true});
  ASSERT_TRUE(lenient.ok());
  const std::vector<std::string> kept = ReadRecords(lenient->get());
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[2], std::string(100, 'c'));
  EXPECT_EQ((*lenient)->dropped_tail().code(), absl::StatusCode::kDataLoss);
}

TEST(RecordIo, RecordThatDoesNotParseReportsItsOffset) {
  const std::string path = TempPath("garbage_message.rec");
  auto writer = RecordWriter::Create(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write("\xff\xff\xff").ok());  // an invalid varint tag
  ASSERT_TRUE((*writer)->Close().ok());
  auto reader = RecordReader::Open(path);
  ASSERT_TRUE(reader.ok());
  proto::Trajectory t;
  absl::StatusOr<bool> more = (*reader)->NextMessage(&t);
  EXPECT_EQ(more.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(more.status().message().find("byte 16: record does not parse as moerl.proto.Trajectory"),
            std::string::npos)
      << more.status();
}

}  // namespace
}  // namespace moerl
