// The 28 invalid examples of areal-reference.md §a.12: each is rejected with
// a caret at the offending byte and a message naming the rule. Rows #8-#11
// are errors only in AReaL generation 3 (explicit backend required): moerl
// gives those errors under ParseOptions::require_explicit_backend and accepts
// them by default, as generation 2 did. Row #28 was invalid only in
// generation 1 (no archon, no names) and parses here.
#include <string>
#include <vector>

#include "common/alloc_mode/alloc_mode.h"
#include "common/alloc_mode/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::HasSubstr;

struct InvalidCase {
  const char* ref;  // row of §a.12
  const char* text;
  int caret;
  const char* what;
};

void ExpectRejected(const InvalidCase& c, const absl::Status& status) {
  SCOPED_TRACE(std::string("row #") + c.ref + ": " + c.text);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CaretColumn(status), c.caret) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(c.what));
  EXPECT_FALSE(FixLine(status).empty()) << status;
}

TEST(AllocationModeGolden, InvalidExamplesNameTheRuleAndPointAtTheCause) {
  const std::vector<InvalidCase> cases = {
      {"1", "fsdp:d4p2", 7, "FSDP backend only supports data/tensor/context parallelism"},
      {"2", "fsdp:d2e2", 7, "FSDP backend only supports data/tensor/context parallelism"},
      {"3", "sglang:d2+fsdp[actor]:d4+fsdp:d4", 0,
       "with 3 or more allocations every one needs a name; found 2 unnamed"},
      {"4", "sglang[actor]:d2+fsdp[actor]:d4", 22, "duplicate name 'actor'"},
      {"5", "fsdp:d4|fsdp:d4", 8, "colocation group has no name"},
      {"6", "(attn:d2p2t1c4|ffn:d2p4t1e2)", 21,
       "pipeline parallel size for attention and FFN must be identical; attention has p2, FFN "
       "has p4"},
      {"7", "(attn:d4p2t1c1|ffn:d2p2t2e2)", 19,
       "world size for expert and attention modules must be identical; attention has 8 "
       "(d*t*p*c), expert has 16"},
      {"12", "d4+d4", 0, "found 2 training allocations without a backend"},
      {"13a", "sglang:d4+d4+d4", 0, "found 3 unnamed"},
      {"13b", "sglang:d4+[actor]:d4+d4", 0, "found 2 unnamed"},
      {"13c", "[actor]:d4+[critic]:d4+d4", 23, "found 1 unnamed"},
      {"15", "fsdp[a]:d4|fsdp[b]:d2", 11,
       "matching world sizes; 'fsdp[a]:d4' has 4, 'fsdp[b]:d2' has 2"},
      {"16", "vllm:d2t4|megatron:d2t4p2", 10, "colocation group has no name"},
      {"17", "megatron:(attn:d4p1t1|ffn:e3)", 26,
       "cannot derive the expert data parallel size: attention world size 4"},
      {"18", "megatron:d1e4", 11,
       "expert model parallel size p*e = 4 does not divide the world size d*t*p*c = 1"},
      {"19", "sglang:d4+archon:d1p2e2", 21,
       "expert model parallel size p*e = 4 does not divide the world size d*t*p*c = 2"},
      {"20a", "sglang:d2c2", 9, "inference backends take only d, t and p, found 'c'"},
      {"20b", "sglang:d2e2", 9, "inference backends take only d, t and p, found 'e'"},
      {"21", "sglang:(attn:d2|ffn:e2)", 7, "hybrid form is only for training backends"},
      {"22a", "megatron:(attn:d2e2|ffn:e2)", 17, "'e' is not an attention dimension"},
      {"22b", "megatron:(attn:d4|ffn:c2e2)", 22, "'c' is not an ffn dimension"},
      {"23a", "FSDP:d4", 0, "backend names are lower-case, found 'FSDP'"},
      {"23b", "fsdp.d4", 4, "'.' between backend and dimensions"},
      {"23c", "fsdp:d0", 5, "sizes start at 1, found 0"},
      {"23d", "fsdp:d01", 5, "sizes have no leading zero, found '01'"},
      {"23e", "fsdp:", 5, "expected dimensions such as 'd4'"},
      {"24a", "sglang.d4p1t1+d4p1t1", 6, "'.' between backend and dimensions"},
      {"24b", "sglang.d4p2t2", 6, "'.' between backend and dimensions"},
      {"25a", "sglang:d4p1t1+eval", 13, "'+eval' (AReaL v0.4's evaluation-only mode)"},
      {"25b", "sglang:d4t2+cpu", 11, "'+cpu' (AReaL v0.4's evaluation-only mode)"},
      {"26", "sglang.d4+fsdp.d4", 6, "'.' between backend and dimensions"},
      {"27a", "sglang:d4p1m1+d2p2m1", 11, "'m' (model parallel) is realhf's letter"},
      {"27b", "d4p2m1", 4, "'m' (model parallel) is realhf's letter"},
  };
  for (const InvalidCase& c : cases) {
    ExpectRejected(c, ParseAllocationMode(c.text).status());
  }
}

TEST(AllocationModeGolden, GenerationThreeRejectsOmittedBackends) {
  ParseOptions strict;
  strict.require_explicit_backend = true;
  const std::vector<InvalidCase> cases = {
      {"8a", "d1", 0, "bare dimensions need a backend prefix"},
      {"8b", "d2p2t1", 0, "bare dimensions need a backend prefix"},
      {"9a", "[actor]:d4", 0, "a named allocation needs a backend prefix"},
      {"9b", "vllm:d4+[actor]:d4", 8, "a named allocation needs a backend prefix"},
      {"10", "sglang:d4+d4", 10, "bare dimensions need a backend prefix"},
      {"11a", "attn:d4p2t2c2|ffn:d2p2t4e2", 0, "the hybrid MoE form needs an explicit backend"},
      {"11b", "(attn:d4p2t2c2|ffn:d2p2t4e2)", 0, "the hybrid MoE form needs an explicit backend"},
      // Row #6 keeps its PP error under the strict rule: it is checked first.
      {"6", "(attn:d2p2t1c4|ffn:d2p4t1e2)", 21, "pipeline parallel size"},
  };
  for (const InvalidCase& c : cases) {
    ExpectRejected(c, ParseAllocationMode(c.text, strict).status());
  }
}

TEST(AllocationModeGolden, GenerationTwoAcceptsOmittedBackends) {
  // Rows #8-#11 by default, auto-selecting the backend.
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"d1", "fsdp:d1"},
      {"d2p2t1", "megatron:d2p2"},
      {"[actor]:d4", "fsdp[actor]:d4"},
      {"vllm:d4+[actor]:d4", "vllm:d4+fsdp[actor]:d4"},
      {"sglang:d4+d4", "sglang:d4+fsdp:d4"},
      {"attn:d4p2t2c2|ffn:d2p2t4e2", "megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)"},
      {"(attn:d4p2t2c2|ffn:d2p2t4e2)", "megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)"},
      // Row #28: archon and names, new in generation 2.
      {"archon:d2", "archon:d2"},
      {"sglang[rollout]:d2+fsdp[actor]:d4", "sglang[rollout]:d2+fsdp[actor]:d4"},
  };
  for (const auto& [text, canonical] : cases) {
    absl::StatusOr<AllocationMode> mode = ParseAllocationMode(text);
    ASSERT_TRUE(mode.ok()) << text << ": " << mode.status();
    EXPECT_EQ(ToString(*mode), canonical);
  }
}

TEST(AllocationModeGolden, PerEngineFieldRejectsAPlusChain) {
  // Row #14: ModelAllocation.from_str("sglang:d4+fsdp:d4").
  ExpectRejected({"14", "sglang:d4+fsdp:d4", 9, "one allocation expected here"},
                 ParseAllocation("sglang:d4+fsdp:d4").status());
  ExpectRejected({"14b", "fsdp:d4|fsdp[ref]:d4", 8, "one allocation expected here, found 2"},
                 ParseAllocation("fsdp:d4|fsdp[ref]:d4").status());
  absl::StatusOr<Allocation> one = ParseAllocation("megatron[actor]:d4t2p2");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->name, "actor");
  EXPECT_EQ(one->dims.WorldSize(), 16);
}

}  // namespace
}  // namespace moerl
