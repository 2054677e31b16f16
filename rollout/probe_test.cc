#include "rollout/probe.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

TEST(Probe, RoundTripsThroughJson) {
  Probe probe;
  probe.version = 3;
  probe.sequences.push_back({{1, 2, 3}, {-0.5, -1.25}});
  absl::StatusOr<Probe> back = ParseProbe(ProbeToJson(probe), "probe.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->version, 3);
  ASSERT_EQ(back->sequences.size(), 1u);
  EXPECT_EQ(back->sequences[0].input_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(back->sequences[0].logprobs, (std::vector<double>{-0.5, -1.25}));
}

TEST(Probe, RejectsLengthsThatDoNotFitNamingTheFileAndSequence) {
  const absl::StatusOr<Probe> bad = ParseProbe(
      R"({"format_version":1,"version":0,"sequences":[{"input_ids":[1,2,3],"logprobs":[-1]}]})",
      "/w/v0/probe.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("/w/v0/probe.json"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("sequences[0]"));
  EXPECT_FALSE(ParseProbe(R"({"format_version":2,"sequences":[]})", "p").ok());
  EXPECT_FALSE(ParseProbe("not json", "p").ok());
}

TEST(Probe, MissingFileIsNoProbe) {
  absl::StatusOr<std::optional<Probe>> probe = ReadProbeFile("/nonexistent/probe.json");
  ASSERT_TRUE(probe.ok());
  EXPECT_FALSE(probe->has_value());
}

TEST(Probe, CompareUsesTheToleranceAndNamesTheWorstToken) {
  const ProbeSequence expected{{1, 2, 3}, {-0.5, -1.0}};
  EXPECT_TRUE(CompareProbe(expected, {-0.51, -1.04}, 0.05).ok());
  const absl::Status off = CompareProbe(expected, {-0.51, -1.2}, 0.05);
  EXPECT_TRUE(absl::IsFailedPrecondition(off));
  EXPECT_THAT(std::string(off.message()), HasSubstr("token 2"));
  EXPECT_FALSE(CompareProbe(expected, {-0.5}, 0.05).ok());
  EXPECT_FALSE(CompareProbe(expected, {-0.5, std::nan("")}, 0.05).ok());
}

}  // namespace
}  // namespace moerl
