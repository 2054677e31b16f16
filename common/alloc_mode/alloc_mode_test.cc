// Behaviour beyond the reference's golden rows: malformed input of every
// kind, whitespace, names, the canonical printer and the legacy views.
#include "common/alloc_mode/alloc_mode.h"

#include <string>
#include <vector>

#include "common/alloc_mode/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

struct BadCase {
  std::string text;
  int caret;
  const char* what;
  const char* fix;  // substring of the fix line ("" = any)
};

TEST(AllocationModeParser, MalformedStringsGetACaretAndAFix) {
  const std::vector<BadCase> cases = {
      {"", 0, "the string is empty", "sglang:d4+fsdp:d4"},
      {"   ", 0, "the string is empty", ""},
      {"sglang:d4+", 9, "'+' must be followed by another allocation", ""},
      {"fsdp:d4|", 7, "'|' must be followed by another allocation", ""},
      {"sglan:d4", 0, "unknown backend 'sglan'", "did you mean 'sglang'?"},
      {"pytorch:d4", 0, "unknown backend 'pytorch'", "sglang, vllm"},
      {"manual", 0, "realhf's old allocation mode", ""},
      {"fsdp:d4x2", 7, "unknown dimension letter 'x'", "d (data)"},
      {"fsdp:D4", 5, "dimension letters are lower-case, found 'D'", "'d'"},
      {"fsdp:d", 5, "expected a size after 'd'", "'d4'"},
      {"fsdp:d2097152", 5, "size too large", ""},
      {"fsdp:d99999999999999999999", 5, "size too large", ""},
      {"megatron:d1024t1024p1024", 0, "spans more than 1048576 GPUs", ""},
      {"fsdp[1a]:d4", 5, "expected a name", "fsdp[actor]:d4"},
      {"fsdp[actor:d4", 10, "expected ']' to close the '[' at byte 4", ""},
      {"fsdp[]:d4", 5, "expected a name", ""},
      {"fsdp d4", 5, "expected ':' after 'fsdp', found 'd'", "'fsdp:d4'"},
      {"fsdp", 4, "expected ':' after 'fsdp', found the end of the string", ""},
      {"megatron:(attn:d2|ffn:e2", 24, "expected ')' to close the '(' at byte 9", ""},
      {"megatron:attn:d2|ffn:e2)", 23, "')' without a matching '('", ""},
      {"megatron:(attn:d2)", 17, "expected '|ffn:<dims>'", ""},
      {"megatron:(atn:d2|ffn:e2)", 10, "expected 'attn:'", ""},
      {"megatron:(attn:d2|fn:e2)", 18, "expected 'ffn:'", ""},
      {"fsdp:(attn:d2|ffn:d2)", 0, "needs megatron or archon, not fsdp", ""},
      {"fsdp:d4 fsdp:d4", 8, "unexpected 'f' after an allocation", "'+'"},
      {"+fsdp:d4", 0, "expected an allocation, found '+'", ""},
      {"eval", 0, "'eval' is not an allocation", ""},
      {"sglang[r]:d4+fsdp[x]:d4|fsdp[x]:d4", 29, "duplicate name 'x' (first used at byte 18)", ""},
      {"sglang:\xff", 7, "expected dimensions", ""},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<AllocationMode> mode = ParseAllocationMode(c.text);
    ASSERT_FALSE(mode.ok());
    EXPECT_EQ(mode.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(CaretColumn(mode.status()), c.caret) << mode.status();
    EXPECT_THAT(std::string(mode.status().message()), HasSubstr(c.what));
    EXPECT_THAT(FixLine(mode.status()), HasSubstr(c.fix));
  }
}

TEST(AllocationModeParser, ErrorEchoReplacesControlBytesSoTheCaretLinesUp) {
  absl::StatusOr<AllocationMode> mode = ParseAllocationMode("fsdp:d4\n+fsdp:d0");
  ASSERT_FALSE(mode.ok());
  EXPECT_THAT(std::string(mode.status().message()), HasSubstr("  fsdp:d4?+fsdp:d0\n"));
  EXPECT_EQ(CaretColumn(mode.status()), 14);
}

TEST(AllocationModeParser, ErrorUnderlinesTheWholeOffendingAllocation) {
  absl::StatusOr<AllocationMode> mode = ParseAllocationMode("fsdp[a]:d4|fsdp[b]:d2");
  ASSERT_FALSE(mode.ok());
  EXPECT_THAT(std::string(mode.status().message()),
              HasSubstr("\n  fsdp[a]:d4|fsdp[b]:d2\n             ^~~~~~~~~~\n"));
}

TEST(AllocationModeParser, WhitespaceBetweenTokensIsIgnored) {
  absl::StatusOr<AllocationMode> mode =
      ParseAllocationMode(" sglang [ r ] : d4 t2 +\tmegatron : ( attn : d1p4 t2c2 | ffn : e4 )\n");
  ASSERT_TRUE(mode.ok()) << mode.status();
  EXPECT_EQ(ToString(*mode), "sglang[r]:d4t2+megatron:p4t2c2e4");
}

TEST(AllocationModeParser, NamedHybridParsesAndRoundTrips) {
  absl::StatusOr<AllocationMode> mode =
      ParseAllocationMode("megatron[actor]:(attn:d2t4|ffn:t2e4)");
  ASSERT_TRUE(mode.ok()) << mode.status();
  EXPECT_EQ(ToString(*mode), "megatron[actor]:(attn:d2t4|ffn:t2e4)");
  EXPECT_EQ(mode->allocations[0].dims.etp, 2);
  EXPECT_EQ(*ParseAllocationMode(ToString(*mode)), *mode);
}

TEST(AllocationModeParser, LoneColocationGroupMayHaveAnUnnamedAnchor) {
  absl::StatusOr<AllocationMode> mode = ParseAllocationMode("fsdp:d4|fsdp[b]:d4|fsdp[c]:d4");
  ASSERT_TRUE(mode.ok()) << mode.status();
  EXPECT_EQ(mode->TotalGpus(), 4);
  EXPECT_EQ(mode->allocations[2].anchor, 0);
  // ...but a '+' chain of three needs every name (reference §a.9).
  EXPECT_FALSE(ParseAllocationMode("sglang:d2+fsdp:d4|fsdp[c]:d4").ok());
}

TEST(AllocationModeParser, InferenceAndTrainingIndicesFollowStringOrder) {
  absl::StatusOr<AllocationMode> mode =
      ParseAllocationMode("vllm[r1]:d2t2+fsdp[a1]:d4+vllm[r2]:d4+fsdp[a2]:d4");
  ASSERT_TRUE(mode.ok()) << mode.status();
  EXPECT_EQ(mode->InferenceIndices(), (std::vector<int>{0, 2}));
  EXPECT_EQ(mode->TrainingIndices(), (std::vector<int>{1, 3}));
  EXPECT_EQ(mode->allocations[0].InstanceSize(), 2);
}

TEST(AllocationModeParser, RepeatedLetterKeepsTheLastValue) {
  EXPECT_EQ(ParseAllocationMode("fsdp:d2d4")->allocations[0].dims.dp, 4);
  EXPECT_EQ(ParseAllocationMode("megatron:(attn:d2d8|ffn:e2e8)")->allocations[0].dims.ep, 8);
}

TEST(AllocationModeParser, ExpertDataParallelFollowsMegatronWhenEpIsOne) {
  // AReaL would report edp = dp = 2 here; the expert layout has 4 replicas.
  const ParallelDims dims = ParseAllocationMode("megatron:d2t2")->allocations[0].dims;
  EXPECT_EQ(dims.ExpertDataParallel(), 4);
}

TEST(AllocationModePrinter, CanonicalFormIsAFixedPoint) {
  for (const char* text : {"sglang:d4p1t1+d4p1t1", "megatron:(attn:d2p1t4|ffn:d1p1t2e4)",
                           "sglang[rollout]:d4+[actor]:d4|megatron[critic]:d4|[ref]:t2d2"}) {
    const std::string once = ToString(*ParseAllocationMode(text));
    EXPECT_EQ(ToString(*ParseAllocationMode(once)), once) << text;
  }
}

TEST(AllocationModePrinter, DebugStringListsEveryDimension) {
  EXPECT_EQ(DebugString(ParseAllocationMode("megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)")
                            ->allocations[0]
                            .dims),
            "dp=4 tp=2 pp=2 cp=2 ep=2 etp=4 edp=2 world=32");
}

}  // namespace
}  // namespace moerl
