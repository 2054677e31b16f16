#include "tools/ring/ring_tool.h"

#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/transport/record_io.h"
#include "common/transport/shm_ring.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

std::string Name() { return absl::StrCat("ringtool", ::getpid(), ".", ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".hop"); }

absl::Status RunTool(RingCommand c, std::string* out) {
  std::ostringstream stream;
  absl::Status s = RunRingCommand(c, stream);
  *out = stream.str();
  return s;
}

TEST(RingTool, CreateStatDrainRemove) {
  const std::string name = Name();
  std::string out;
  ASSERT_TRUE(RunTool({.verb = "create", .name = name, .capacity_bytes = 1 << 16, .mode = "ack"}, &out).ok()) << out;
  {
    auto producer = ShmRing::Open(name, RingRole::kProducer);
    ASSERT_TRUE(producer.ok());
    ASSERT_TRUE((*producer)->Push("first", absl::Seconds(1)).ok());
    ASSERT_TRUE((*producer)->Push("second", absl::Seconds(1)).ok());
    ASSERT_TRUE((*producer)->CloseProducer().ok());
  }
  ASSERT_TRUE(RunTool({.verb = "stat", .name = name, .json = true}, &out).ok());
  EXPECT_NE(out.find("\"depth_messages\":2"), std::string::npos) << out;
  EXPECT_NE(out.find("\"mode\":\"ack\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"capacity_bytes\":65536"), std::string::npos) << out;

  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string file = std::string(dir ? dir : "/tmp") + "/drained.rec";
  ASSERT_TRUE(RunTool({.verb = "drain", .name = name, .output = file}, &out).ok());
  EXPECT_NE(out.find("drained 2 messages (11 bytes)"), std::string::npos) << out;
  EXPECT_NE(out.find("end of stream"), std::string::npos) << out;
  auto reader = RecordReader::Open(file);
  ASSERT_TRUE(reader.ok());
  std::string record;
  ASSERT_TRUE(*(*reader)->Next(&record));
  EXPECT_EQ(record, "first");

  ASSERT_TRUE(RunTool({.verb = "remove", .name = name}, &out).ok());
  EXPECT_EQ(RunTool({.verb = "remove", .name = name}, &out).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(RunTool({.verb = "stat", .name = name}, &out).code(), absl::StatusCode::kNotFound);
}

TEST(RingTool, BadInputIsAnErrorNamingIt) {
  std::string out;
  const absl::Status mode = RunTool({.verb = "create", .name = Name(), .mode = "fast"}, &out);
  EXPECT_EQ(mode.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mode.message().find("--mode"), std::string::npos);
  EXPECT_EQ(RunTool({.verb = "explode", .name = Name()}, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunTool({.verb = "create", .name = "no-dots"}, &out).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moerl
