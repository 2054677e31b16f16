// Every truncation and every byte flip of a small record file is detected,
// at the offset of the header, record or end marker that holds the damage.
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/transport/record_io.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

struct SmallFile {
  std::string bytes;
  std::vector<uint64_t> frame_starts;  // header, each record, end marker
  std::vector<std::string> records;
};

SmallFile MakeSmallFile() {
  SmallFile f;
  f.records = {"alpha", "", std::string(40, 'z'), "omega!"};
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/small.rec";
  auto writer = RecordWriter::Create(path);
  if (!writer.ok()) std::abort();
  uint64_t at = kRecordFileHeaderBytes;
  f.frame_starts.push_back(0);
  for (const std::string& r : f.records) {
    f.frame_starts.push_back(at);
    at += kRecordFrameBytes + r.size();
    if (!(*writer)->Write(r).ok()) std::abort();
  }
  f.frame_starts.push_back(at);
  if (!(*writer)->Close().ok()) std::abort();
  std::ifstream in(path, std::ios::binary);
  f.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return f;
}

uint64_t FrameHolding(const SmallFile& f, uint64_t offset) {
  uint64_t start = 0;
  for (uint64_t s : f.frame_starts) {
    if (s <= offset) start = s;
  }
  return start;
}

// Reads everything; returns the first error (OK if the file read cleanly)
// and the number of records read before it.
absl::Status ReadEverything(const std::string& bytes, RecordReader::Options options,
                            int* records) {
  *records = 0;
  auto reader = RecordReader::FromString("small.rec", bytes, options);
  if (!reader.ok()) return reader.status();
  std::string record;
  while (true) {
    absl::StatusOr<bool> more = (*reader)->Next(&record);
    if (!more.ok()) return more.status();
    if (!*more) return (*reader)->dropped_tail();
    ++*records;
  }
}

// The N of "small.rec: byte N: ..."; -1 if absent.
long OffsetIn(const absl::Status& status) {
  const std::string message(status.message());
  const std::string prefix = "small.rec: byte ";
  if (message.rfind(prefix, 0) != 0) return -1;
  const size_t colon = message.find(':', prefix.size());
  long offset = -1;
  if (!absl::SimpleAtoi(message.substr(prefix.size(), colon - prefix.size()), &offset)) return -1;
  return offset;
}

TEST(RecordIoDamage, IntactFileReadsCleanly) {
  const SmallFile f = MakeSmallFile();
  int records = 0;
  EXPECT_TRUE(ReadEverything(f.bytes, {}, &records).ok());
  EXPECT_EQ(records, static_cast<int>(f.records.size()));
}

TEST(RecordIoDamage, EveryTruncationIsReportedAtTheCutFrame) {
  const SmallFile f = MakeSmallFile();
  for (uint64_t length = 0; length < f.bytes.size(); ++length) {
    const std::string cut = f.bytes.substr(0, length);
    int records = 0;
    const absl::Status strict = ReadEverything(cut, {}, &records);
    ASSERT_FALSE(strict.ok()) << "truncation to " << length << " bytes went unnoticed";
    EXPECT_EQ(OffsetIn(strict), static_cast<long>(FrameHolding(f, length)))
        << "truncation to " << length << ": " << strict;

    // Recovery keeps exactly the records that lie wholly inside the prefix.
    int kept = 0;
    const absl::Status lenient = ReadEverything(cut, {.recover_truncated_tail = true}, &kept);
    if (length < kRecordFileHeaderBytes) continue;  // no prefix to keep without a header
    EXPECT_EQ(lenient.code(), absl::StatusCode::kDataLoss) << lenient;
    int whole = 0;
    for (size_t i = 1; i + 1 < f.frame_starts.size(); ++i) {
      if (f.frame_starts[i + 1] <= length) ++whole;
    }
    EXPECT_EQ(kept, whole) << "recovering a file truncated to " << length << " bytes";
  }
}

TEST(RecordIoDamage, EveryByteFlipIsReportedAtTheDamagedFrame) {
  const SmallFile f = MakeSmallFile();
  int cases = 0;
  for (uint64_t offset = 0; offset < f.bytes.size(); ++offset) {
    for (int mask : {0x01, 0x80, 0xFF}) {
      std::string damaged = f.bytes;
      damaged[offset] = static_cast<char>(damaged[offset] ^ mask);
      int records = 0;
      const absl::Status status = ReadEverything(damaged, {}, &records);
      ASSERT_FALSE(status.ok()) << "flip 0x" << std::hex << mask << " at byte " << std::dec
                                << offset << " went unnoticed";
      EXPECT_EQ(OffsetIn(status), static_cast<long>(FrameHolding(f, offset)))
          << "flip at byte " << offset << ": " << status;
      ++cases;
    }
  }
  EXPECT_EQ(cases, static_cast<int>(3 * f.bytes.size()));
}

TEST(RecordIoDamage, TrailingBytesAfterTheEndMarkerAreReported) {
  const SmallFile f = MakeSmallFile();
  int records = 0;
  const absl::Status status = ReadEverything(f.bytes + "junk", {}, &records);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(OffsetIn(status), static_cast<long>(f.bytes.size())) << status;
}

}  // namespace
}  // namespace moerl
