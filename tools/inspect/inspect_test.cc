#include "tools/inspect/inspect.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/proto/prompt.pb.h"
#include "common/proto/trajectory.pb.h"
#include "common/transport/record_io.h"
#include "common/transport/shm_ring.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

std::string WriteTrajectories(const std::string& name) {
  const std::string path = TempPath(name);
  auto writer = RecordWriter::Create(path);
  EXPECT_TRUE(writer.ok());
  for (int i = 0; i < 2; ++i) {
    proto::Trajectory t;
    t.set_format_version(1);
    t.set_prompt_id(absl::StrCat("gsm8k/test/", i));
    t.add_output_tokens(100 + i);
    EXPECT_TRUE((*writer)->WriteMessage(t).ok());
  }
  EXPECT_TRUE((*writer)->Close().ok());
  return path;
}

absl::Status RunTool(InspectCommand c, std::string* out) {
  std::ostringstream stream;
  absl::Status s = RunInspect(c, stream);
  *out = stream.str();
  return s;
}

TEST(Inspect, PrintsRecordFileAsProtobufText) {
  std::string out;
  ASSERT_TRUE(RunTool({.source = WriteTrajectories("text.rec"), .type = "moerl.proto.Trajectory"}, &out).ok());
  EXPECT_NE(out.find("# 1 (byte "), std::string::npos) << out;
  EXPECT_NE(out.find("prompt_id: \"gsm8k/test/1\""), std::string::npos) << out;
  EXPECT_NE(out.find("output_tokens: 101"), std::string::npos) << out;
}

TEST(Inspect, PrintsRecordFileAsJsonLines) {
  std::string out;
  ASSERT_TRUE(
      RunTool({.source = WriteTrajectories("json.rec"), .type = "moerl.proto.Trajectory", .format = "json"}, &out).ok());
  EXPECT_NE(out.find("{\"format_version\":1,\"prompt_id\":\"gsm8k/test/0\",\"output_tokens\":[100]}\n"),
            std::string::npos)
      << out;
}

TEST(Inspect, WithoutATypePrintsSizesAndHex) {
  std::string out;
  ASSERT_TRUE(RunTool({.source = WriteTrajectories("raw.rec")}, &out).ok());
  EXPECT_NE(out.find("# 0 (byte 16): "), std::string::npos) << out;
}

TEST(Inspect, DamagedFileFailsWithTheOffsetAndRecoverPrintsThePrefix) {
  const std::string path = WriteTrajectories("damaged.rec");
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(-30, std::ios::end);  // inside the second record
  f.put('\x7f');
  f.close();
  std::string out;
  const absl::Status strict = RunTool({.source = path, .type = "moerl.proto.Trajectory"}, &out);
  EXPECT_EQ(strict.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(strict.message().find("damaged.rec: byte "), std::string::npos) << strict;
  ASSERT_TRUE(RunTool({.source = path, .type = "moerl.proto.Trajectory", .recover = true}, &out).ok());
  EXPECT_NE(out.find("gsm8k/test/0"), std::string::npos);
  EXPECT_NE(out.find("# recovered 1 records"), std::string::npos) << out;
}

TEST(Inspect, UnknownTypeIsAnErrorListingTheKnownOnes) {
  std::string out;
  const absl::Status s = RunTool({.source = WriteTrajectories("t.rec"), .type = "moerl.proto.Nope"}, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("moerl.proto.Prompt"), std::string::npos);
}

TEST(Inspect, PrintsARingsQueuedMessagesWithoutTakingThem) {
  const std::string name = absl::StrCat("inspect", ::getpid(), ".t.prompts");
  ShmRing::Remove(name).IgnoreError();
  ASSERT_TRUE(ShmRing::Create(name, {.capacity_bytes = 1 << 16}).ok());
  auto producer = ShmRing::Open(name, RingRole::kProducer);
  ASSERT_TRUE(producer.ok());
  proto::Prompt p;
  p.set_id("gsm8k/test/7");
  p.set_gold_answer("42");
  ASSERT_TRUE((*producer)->Push(p.SerializeAsString(), absl::Seconds(1)).ok());
  std::string out;
  ASSERT_TRUE(RunTool({.source = "ring:" + name, .type = "moerl.proto.Prompt", .format = "json"}, &out).ok());
  EXPECT_NE(out.find("\"gold_answer\":\"42\""), std::string::npos) << out;
  EXPECT_EQ((*producer)->Stats().depth_messages, 1u);
  ShmRing::Remove(name).IgnoreError();
}

}  // namespace
}  // namespace moerl
