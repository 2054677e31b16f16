#include "common/status.h"

#include <string>

#include "common/logging.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

absl::StatusOr<int> ParsePositive(int value) {
  if (value <= 0) return absl::InvalidArgumentError("value must be positive");
  return value;
}

absl::Status Twice(int value, int* out) {
  MOERL_ASSIGN_OR_RETURN(int parsed, ParsePositive(value));
  MOERL_ASSIGN_OR_RETURN(*out, ParsePositive(parsed * 2));
  return absl::OkStatus();
}

absl::Status FirstError(absl::Status a, absl::Status b, int* calls) {
  ++*calls;
  MOERL_RETURN_IF_ERROR(a);
  ++*calls;
  MOERL_RETURN_IF_ERROR(b);
  ++*calls;
  return absl::OkStatus();
}

TEST(StatusMacros, AssignOrReturnPassesValuesThrough) {
  int out = 0;
  ASSERT_TRUE(Twice(21, &out).ok());
  EXPECT_EQ(out, 42);
}

TEST(StatusMacros, AssignOrReturnStopsAtFirstError) {
  int out = -7;
  absl::Status status = Twice(-1, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out, -7);
}

TEST(StatusMacros, ReturnIfErrorReturnsTheFailingStatus) {
  int calls = 0;
  absl::Status status =
      FirstError(absl::OkStatus(), absl::NotFoundError("second"), &calls);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "second");
  EXPECT_EQ(calls, 2);
}

TEST(Annotate, PrefixesContextAndKeepsCode) {
  absl::Status status = Annotate(absl::DataLossError("crc mismatch"), "batches/0001.rec");
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(status.message(), "batches/0001.rec: crc mismatch");
  EXPECT_TRUE(Annotate(absl::OkStatus(), "x").ok());
}

TEST(Logging, CheckFailureAborts) {
  EXPECT_DEATH({ MOERL_CHECK(1 + 1 == 3) << "math"; }, "Check failed: 1 \\+ 1 == 3 math");
}

TEST(Logging, SeverityFilterDropsLowerMessages) {
  SetMinLogSeverity(LogSeverity::kError);
  EXPECT_EQ(MinLogSeverity(), LogSeverity::kError);
  testing::internal::CaptureStderr();
  MOERL_LOG(INFO) << "hidden";
  MOERL_LOG(ERROR) << "shown";
  std::string err = testing::internal::GetCapturedStderr();
  SetMinLogSeverity(LogSeverity::kInfo);
  EXPECT_EQ(err.find("hidden"), std::string::npos);
  EXPECT_NE(err.find("shown"), std::string::npos);
  EXPECT_EQ(err[0], 'E');
}

}  // namespace
}  // namespace moerl
