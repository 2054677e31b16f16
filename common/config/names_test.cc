#include "common/config/names.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

std::string Error(const absl::Status& s) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

TEST(RunNames, AReaLExampleNamesAreValid) {
  EXPECT_TRUE(ValidateExperimentName("gsm8k-grpo").ok());
  EXPECT_TRUE(ValidateExperimentName("gsm8k-grpo-megatron").ok());
  EXPECT_TRUE(ValidateTrialName("trial0").ok());
  EXPECT_TRUE(ValidateTrialName("run_2.b").ok());
}

TEST(RunNames, ExperimentNameMayNotContainUnderscore) {
  EXPECT_EQ(Error(ValidateExperimentName("gsm8k_grpo")),
            "key 'experiment_name' = 'gsm8k_grpo': '_' at byte 5 is not allowed: AReaL's rule: "
            "experiment_name must not contain '_'; e.g. experiment_name=gsm8k-grpo");
}

TEST(RunNames, TrialNameMayNotContainDash) {
  EXPECT_THAT(Error(ValidateTrialName("trial-0")),
              HasSubstr("'-' at byte 5 is not allowed: AReaL's rule: trial_name must not contain "
                        "'-'; e.g. trial_name=trial_0"));
}

TEST(RunNames, PathTraversalAndSeparatorsAreRejected) {
  EXPECT_THAT(Error(ValidateExperimentName("..")), HasSubstr("path traversal"));
  EXPECT_THAT(Error(ValidateTrialName(".")), HasSubstr("path traversal"));
  EXPECT_THAT(Error(ValidateExperimentName("a/b")), HasSubstr("a path separator"));
  EXPECT_THAT(Error(ValidateTrialName("..\\x")), HasSubstr("must not start with '.'"));
  EXPECT_THAT(Error(ValidateExperimentName(".hidden")), HasSubstr("a hidden directory"));
  EXPECT_THAT(Error(ValidateExperimentName("-rf")), HasSubstr("reads as a command-line flag"));
}

TEST(RunNames, EmptyLongAndOddBytesAreRejected) {
  EXPECT_THAT(Error(ValidateExperimentName("")), HasSubstr("'experiment_name' is required"));
  EXPECT_THAT(Error(ValidateTrialName(std::string(129, 'a'))), HasSubstr("129 bytes long"));
  EXPECT_THAT(Error(ValidateTrialName("a b")), HasSubstr("' ' at byte 1"));
  EXPECT_THAT(Error(ValidateTrialName(std::string("a\nb"))), HasSubstr("byte 0xa at byte 1"));
  EXPECT_THAT(Error(ValidateTrialName("caf\xc3\xa9")), HasSubstr("byte 0xc3 at byte 3"));
}

TEST(RunNames, RunDirectoryJoinsWithoutDoubledSlashes) {
  EXPECT_EQ(RunDirectory("/tmp/areal/", "gsm8k-grpo", "trial0"), "/tmp/areal/gsm8k-grpo/trial0");
  EXPECT_EQ(RunDirectory("/", "e", "t"), "/e/t");
  EXPECT_EQ(RunDirectory("rel", "e", "t"), "rel/e/t");
}

}  // namespace
}  // namespace moerl
