// The 56 valid examples of areal-reference.md §a.11, with their parsed
// values. Rows #3, #5 and #33-#36 are AReaL v0.4 (generation 1) spellings that
// moerl rejects with a hint (the dot separator and `+eval`); they are checked
// here with their caret position.
#include <string>
#include <vector>

#include "common/alloc_mode/alloc_mode.h"
#include "common/alloc_mode/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

struct Expected {
  const char* backend;
  const char* name;
  int dp, tp, pp, cp, ep, etp, edp, world, anchor;
};

struct ValidCase {
  const char* ref;  // row of §a.11
  const char* text;
  int total_gpus;
  std::vector<Expected> allocations;
  const char* canonical;
};

std::vector<ValidCase> ValidCases() {
  return {
      {"1a", "sglang:d4p1t1", 4, {{"sglang", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}}, "sglang:d4"},
      {"1b", "fsdp:d4p1t1", 4, {{"fsdp", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}}, "fsdp:d4"},
      {"2", "sglang:d4p1t1+d4p1t1", 8,
       {{"sglang", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}, {"fsdp", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}},
       "sglang:d4+fsdp:d4"},
      {"4", "sglang:d4p1t1+megatron:d4p1t1", 8,
       {{"sglang", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}, {"megatron", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}},
       "sglang:d4+megatron:d4"},
      {"6", "sglang:d4p2t2", 16, {{"sglang", "", 4, 2, 2, 1, 1, 1, 8, 16, -1}}, "sglang:d4p2t2"},
      {"7", "sglang:d2+fsdp:d4", 6,
       {{"sglang", "", 2, 1, 1, 1, 1, 1, 2, 2, -1}, {"fsdp", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}},
       "sglang:d2+fsdp:d4"},
      {"8", "sglang:d4p2t2+megatron:(attn:d2p2t2c2|ffn:d2p2t2e2)", 32,
       {{"sglang", "", 4, 2, 2, 1, 1, 1, 8, 16, -1},
        {"megatron", "", 2, 2, 2, 2, 2, 2, 2, 16, -1}},
       "sglang:d4p2t2+megatron:(attn:d2p2t2c2|ffn:d2p2t2e2)"},
      {"9", "fsdp:d4", 4, {{"fsdp", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}}, "fsdp:d4"},
      {"10", "megatron:d2p2t1", 4, {{"megatron", "", 2, 1, 2, 1, 1, 1, 2, 4, -1}}, "megatron:d2p2"},
      {"11", "vllm:d2t4+megatron:d2p2t1", 12,
       {{"vllm", "", 2, 4, 1, 1, 1, 1, 8, 8, -1}, {"megatron", "", 2, 1, 2, 1, 1, 1, 2, 4, -1}},
       "vllm:d2t4+megatron:d2p2"},
      {"12", "megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)", 32,
       {{"megatron", "", 4, 2, 2, 2, 2, 4, 2, 32, -1}},
       "megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)"},
      {"13", "sglang:d4p1t2+megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)", 40,
       {{"sglang", "", 4, 2, 1, 1, 1, 1, 8, 8, -1},
        {"megatron", "", 4, 2, 2, 2, 2, 4, 2, 32, -1}},
       "sglang:d4t2+megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)"},
      {"14", "sglang[rollout]:d2+fsdp[actor]:d4", 6,
       {{"sglang", "rollout", 2, 1, 1, 1, 1, 1, 2, 2, -1},
        {"fsdp", "actor", 4, 1, 1, 1, 1, 1, 4, 4, -1}},
       "sglang[rollout]:d2+fsdp[actor]:d4"},
      {"15", "sglang[rollout]:d2+fsdp[actor]:d4+fsdp[critic]:d4", 10,
       {{"sglang", "rollout", 2, 1, 1, 1, 1, 1, 2, 2, -1},
        {"fsdp", "actor", 4, 1, 1, 1, 1, 1, 4, 4, -1},
        {"fsdp", "critic", 4, 1, 1, 1, 1, 1, 4, 4, -1}},
       "sglang[rollout]:d2+fsdp[actor]:d4+fsdp[critic]:d4"},
      {"16", "sglang[rollout]:d2+fsdp[actor]:d4|fsdp[critic]:d4", 6,
       {{"sglang", "rollout", 2, 1, 1, 1, 1, 1, 2, 2, -1},
        {"fsdp", "actor", 4, 1, 1, 1, 1, 1, 4, 4, -1},
        {"fsdp", "critic", 4, 1, 1, 1, 1, 1, 4, 4, 1}},
       "sglang[rollout]:d2+fsdp[actor]:d4|fsdp[critic]:d4"},
      {"17", "vllm[rollout1]:d2t2 + fsdp[actor1]:d4 + vllm[rollout2]:d4 + fsdp[actor2]:d4", 16,
       {{"vllm", "rollout1", 2, 2, 1, 1, 1, 1, 4, 4, -1},
        {"fsdp", "actor1", 4, 1, 1, 1, 1, 1, 4, 4, -1},
        {"vllm", "rollout2", 4, 1, 1, 1, 1, 1, 4, 4, -1},
        {"fsdp", "actor2", 4, 1, 1, 1, 1, 1, 4, 4, -1}},
       "vllm[rollout1]:d2t2+fsdp[actor1]:d4+vllm[rollout2]:d4+fsdp[actor2]:d4"},
      {"18", "sglang[r1]:d2+sglang[r2]:d2+fsdp[actor]:d4", 8,
       {{"sglang", "r1", 2, 1, 1, 1, 1, 1, 2, 2, -1},
        {"sglang", "r2", 2, 1, 1, 1, 1, 1, 2, 2, -1},
        {"fsdp", "actor", 4, 1, 1, 1, 1, 1, 4, 4, -1}},
       "sglang[r1]:d2+sglang[r2]:d2+fsdp[actor]:d4"},
      {"19", "vllm:d2t4p2", 16, {{"vllm", "", 2, 4, 2, 1, 1, 1, 8, 16, -1}}, "vllm:d2p2t4"},
      {"20", "megatron:d4t2p2", 16, {{"megatron", "", 4, 2, 2, 1, 1, 1, 8, 16, -1}},
       "megatron:d4p2t2"},
      {"21", "archon:d2", 2, {{"archon", "", 2, 1, 1, 1, 1, 1, 2, 2, -1}}, "archon:d2"},
      {"22", "megatron:(attn:d1p12t4|ffn:d1p12e4)", 48,
       {{"megatron", "", 1, 4, 12, 1, 4, 1, 1, 48, -1}}, "megatron:p12t4e4"},
      {"23", "fsdp:d4t2", 8, {{"fsdp", "", 4, 2, 1, 1, 1, 1, 8, 8, -1}}, "fsdp:d4t2"},
      {"24", "fsdp:d4c2", 8, {{"fsdp", "", 4, 1, 1, 2, 1, 1, 8, 8, -1}}, "fsdp:d4c2"},
      {"25a", "sglang:d1", 1, {{"sglang", "", 1, 1, 1, 1, 1, 1, 1, 1, -1}}, "sglang:d1"},
      {"25b", "fsdp:d1", 1, {{"fsdp", "", 1, 1, 1, 1, 1, 1, 1, 1, -1}}, "fsdp:d1"},
      {"26", "d2p2t1", 4, {{"megatron", "", 2, 1, 2, 1, 1, 1, 2, 4, -1}}, "megatron:d2p2"},
      {"27", "d2p2t4e2c4", 64, {{"megatron", "", 2, 4, 2, 4, 2, 1, 16, 64, -1}},
       "megatron:d2p2t4c4e2"},
      {"28a", "attn:d4p2t2c2|ffn:d2p2t4e2", 32, {{"megatron", "", 4, 2, 2, 2, 2, 4, 2, 32, -1}},
       "megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)"},
      {"28b", "(attn:d4p2t2c2|ffn:d2p2t4e2)", 32, {{"megatron", "", 4, 2, 2, 2, 2, 4, 2, 32, -1}},
       "megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)"},
      {"29", "sglang:d4+d4", 8,
       {{"sglang", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}, {"fsdp", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}},
       "sglang:d4+fsdp:d4"},
      {"30", "vllm:d4+[actor]:d4", 8,
       {{"vllm", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}, {"fsdp", "actor", 4, 1, 1, 1, 1, 1, 4, 4, -1}},
       "vllm:d4+fsdp[actor]:d4"},
      {"31", "sglang[rollout]:d4+[actor]:d4|megatron[critic]:d4|[ref]:t2d2|[rew]:c4", 8,
       {{"sglang", "rollout", 4, 1, 1, 1, 1, 1, 4, 4, -1},
        {"fsdp", "actor", 4, 1, 1, 1, 1, 1, 4, 4, -1},
        {"megatron", "critic", 4, 1, 1, 1, 1, 1, 4, 4, 1},
        {"fsdp", "ref", 2, 2, 1, 1, 1, 1, 4, 4, 1},
        {"fsdp", "rew", 1, 1, 1, 4, 1, 1, 4, 4, 1}},
       "sglang[rollout]:d4+fsdp[actor]:d4|megatron[critic]:d4|fsdp[ref]:d2t2|fsdp[rew]:c4"},
      {"32", "[actor]:d4", 4, {{"fsdp", "actor", 4, 1, 1, 1, 1, 1, 4, 4, -1}}, "fsdp[actor]:d4"},
      {"37", "sglang:d2t4", 8, {{"sglang", "", 2, 4, 1, 1, 1, 1, 8, 8, -1}}, "sglang:d2t4"},
      {"38", "megatron:d2p2t4", 16, {{"megatron", "", 2, 4, 2, 1, 1, 1, 8, 16, -1}},
       "megatron:d2p2t4"},
      {"39", "megatron:d2p2t4e4", 16, {{"megatron", "", 2, 4, 2, 1, 4, 1, 2, 16, -1}},
       "megatron:d2p2t4e4"},
      {"40", "sglang:d2t4 + fsdp:d4t2", 16,
       {{"sglang", "", 2, 4, 1, 1, 1, 1, 8, 8, -1}, {"fsdp", "", 4, 2, 1, 1, 1, 1, 8, 8, -1}},
       "sglang:d2t4+fsdp:d4t2"},
      {"41", "sglang:d4t4 + megatron:d2p2t4e4", 32,
       {{"sglang", "", 4, 4, 1, 1, 1, 1, 16, 16, -1},
        {"megatron", "", 2, 4, 2, 1, 4, 1, 2, 16, -1}},
       "sglang:d4t4+megatron:d2p2t4e4"},
      {"42", "megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)", 16,
       {{"megatron", "", 1, 2, 4, 2, 4, 1, 1, 16, -1}}, "megatron:p4t2c2e4"},
      {"43", "sglang:d4t4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)", 32,
       {{"sglang", "", 4, 4, 1, 1, 1, 1, 16, 16, -1},
        {"megatron", "", 1, 2, 4, 2, 4, 1, 1, 16, -1}},
       "sglang:d4t4+megatron:p4t2c2e4"},
      {"44", "sglang:d4t8+megatron:(attn:d1p12t4|ffn:d1p12e4)", 80,
       {{"sglang", "", 4, 8, 1, 1, 1, 1, 32, 32, -1},
        {"megatron", "", 1, 4, 12, 1, 4, 1, 1, 48, -1}},
       "sglang:d4t8+megatron:p12t4e4"},
      {"45", "sglang:d8t4+megatron:(attn:d4p4t2|ffn:d2p4e4)", 64,
       {{"sglang", "", 8, 4, 1, 1, 1, 1, 32, 32, -1},
        {"megatron", "", 4, 2, 4, 1, 4, 1, 2, 32, -1}},
       "sglang:d8t4+megatron:d4p4t2e4"},
      {"46", "sglang:d6+archon:d2", 8,
       {{"sglang", "", 6, 1, 1, 1, 1, 1, 6, 6, -1}, {"archon", "", 2, 1, 1, 1, 1, 1, 2, 2, -1}},
       "sglang:d6+archon:d2"},
      {"47", "sglang:d4t2+archon:d4p2t2", 24,
       {{"sglang", "", 4, 2, 1, 1, 1, 1, 8, 8, -1}, {"archon", "", 4, 2, 2, 1, 1, 1, 8, 16, -1}},
       "sglang:d4t2+archon:d4p2t2"},
      {"48", "sglang:d4+archon:d2p2e2", 8,
       {{"sglang", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}, {"archon", "", 2, 1, 2, 1, 2, 1, 1, 4, -1}},
       "sglang:d4+archon:d2p2e2"},
      {"49", "sglang:d4+fsdp:d2c2", 8,
       {{"sglang", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}, {"fsdp", "", 2, 1, 1, 2, 1, 1, 4, 4, -1}},
       "sglang:d4+fsdp:d2c2"},
      {"50", "sglang:d2t2+fsdp:d4", 8,
       {{"sglang", "", 2, 2, 1, 1, 1, 1, 4, 4, -1}, {"fsdp", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}},
       "sglang:d2t2+fsdp:d4"},
      {"51", "megatron:(attn:d2t4|ffn:d2e4)", 8, {{"megatron", "", 2, 4, 1, 1, 4, 1, 2, 8, -1}},
       "megatron:d2t4e4"},
      {"52", "megatron:(attn:d2p1t4|ffn:d1p1t2e4)", 8,
       {{"megatron", "", 2, 4, 1, 1, 4, 2, 1, 8, -1}}, "megatron:(attn:d2t4|ffn:t2e4)"},
      {"53a", "sglang:p2t2", 4, {{"sglang", "", 1, 2, 2, 1, 1, 1, 2, 4, -1}}, "sglang:p2t2"},
      {"53b", "sglang:d3p2t4", 24, {{"sglang", "", 3, 4, 2, 1, 1, 1, 12, 24, -1}},
       "sglang:d3p2t4"},
      {"54", "megatron:(attn:d2p2t2c2|ffn:e4)", 16,
       {{"megatron", "", 2, 2, 2, 2, 4, 1, 2, 16, -1}}, "megatron:d2p2t2c2e4"},
      {"55", "megatron:(attn:d8|ffn:e8)", 8, {{"megatron", "", 8, 1, 1, 1, 8, 1, 1, 8, -1}},
       "megatron:d8e8"},
      {"56a", "fsdp:t2d2", 4, {{"fsdp", "", 2, 2, 1, 1, 1, 1, 4, 4, -1}}, "fsdp:d2t2"},
      {"56b", "fsdp:d2d4", 4, {{"fsdp", "", 4, 1, 1, 1, 1, 1, 4, 4, -1}}, "fsdp:d4"},
  };
}

TEST(AllocationModeGolden, ValidExamplesParseToTheReferenceValues) {
  for (const ValidCase& c : ValidCases()) {
    SCOPED_TRACE(std::string("row #") + c.ref + ": " + c.text);
    absl::StatusOr<AllocationMode> mode = ParseAllocationMode(c.text);
    ASSERT_TRUE(mode.ok()) << mode.status();
    EXPECT_EQ(mode->TotalGpus(), c.total_gpus);
    ASSERT_EQ(mode->allocations.size(), c.allocations.size());
    for (size_t i = 0; i < c.allocations.size(); ++i) {
      const Allocation& got = mode->allocations[i];
      const Expected& want = c.allocations[i];
      SCOPED_TRACE("allocation " + std::to_string(i) + ": " + DebugString(got.dims));
      EXPECT_EQ(BackendName(got.backend), want.backend);
      EXPECT_EQ(got.name, want.name);
      EXPECT_EQ(got.dims.dp, want.dp);
      EXPECT_EQ(got.dims.tp, want.tp);
      EXPECT_EQ(got.dims.pp, want.pp);
      EXPECT_EQ(got.dims.cp, want.cp);
      EXPECT_EQ(got.dims.ep, want.ep);
      EXPECT_EQ(got.dims.etp, want.etp);
      EXPECT_EQ(got.dims.ExpertDataParallel(), want.edp);
      EXPECT_EQ(got.dims.WorldSize(), want.world);
      EXPECT_EQ(got.anchor, want.anchor);
    }
    EXPECT_EQ(ToString(*mode), c.canonical);
    absl::StatusOr<AllocationMode> again = ParseAllocationMode(ToString(*mode));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, *mode);
  }
}

TEST(AllocationModeGolden, CanonicalFormsParseUnderTheExplicitBackendRule) {
  ParseOptions strict;
  strict.require_explicit_backend = true;
  for (const ValidCase& c : ValidCases()) {
    absl::StatusOr<AllocationMode> mode = ParseAllocationMode(c.canonical, strict);
    EXPECT_TRUE(mode.ok()) << c.canonical << ": " << mode.status();
  }
}

struct RejectedCase {
  const char* ref;
  const char* text;
  int caret;
  const char* what;
  const char* fix;
};

TEST(AllocationModeGolden, GenerationOneSpellingsAreRejectedWithAHint) {
  const std::vector<RejectedCase> cases = {
      {"3", "sglang.d4p1t1+d4p1t1", 6, "'.' between backend and dimensions",
       "'sglang:d4p1t1+d4p1t1'"},
      {"5", "sglang.d4p1t1+d1p2t2", 6, "'.' between backend", "'sglang:d4p1t1+d1p2t2'"},
      {"33a", "sglang:d4p1t1+eval", 13, "'+eval'", "'sglang:d4p1t1'"},
      {"33b", "sglang.d4p1t1+eval", 6, "'.' between backend", "sglang:d4p1t1+eval"},
      {"34", "sglang.d4p1t2+eval", 6, "'.' between backend", "sglang:d4p1t2"},
      {"35", "vllm.d2p2t2+d2p2t2", 4, "'.' between backend", "'vllm:d2p2t2+d2p2t2'"},
      {"36", "sglang.d4p2t2+(attn:d2p2t2c2|ffn:d2p2t2e2)", 6, "'.' between backend",
       "'sglang:d4p2t2+(attn:d2p2t2c2|ffn:d2p2t2e2)'"},
  };
  for (const RejectedCase& c : cases) {
    SCOPED_TRACE(std::string("row #") + c.ref + ": " + c.text);
    absl::StatusOr<AllocationMode> mode = ParseAllocationMode(c.text);
    ASSERT_FALSE(mode.ok());
    EXPECT_EQ(mode.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(CaretColumn(mode.status()), c.caret) << mode.status();
    EXPECT_THAT(std::string(mode.status().message()), HasSubstr(c.what));
    EXPECT_THAT(FixLine(mode.status()), HasSubstr(c.fix));
  }
}

}  // namespace
}  // namespace moerl
