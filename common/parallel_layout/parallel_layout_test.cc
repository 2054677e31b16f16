// Reproduces the 16-GPU tables of megatron-reference.md §1.5 and checks the
// partition and folding properties on every MoE layout of the AReaL golden
// examples.
#include "common/parallel_layout/parallel_layout.h"

#include <algorithm>
#include <set>
#include <string>

#include "common/alloc_mode/alloc_mode.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moerl {
namespace {

using ::testing::StartsWith;

ParallelLayout LayoutOf(const char* allocation) {
  absl::StatusOr<Allocation> a = ParseAllocation(allocation);
  EXPECT_TRUE(a.ok()) << a.status();
  absl::StatusOr<ParallelLayout> layout = ParallelLayout::Create(a->dims);
  EXPECT_TRUE(layout.ok()) << layout.status();
  return *layout;
}

std::string Singletons(int n) {
  RankGroups groups;
  for (int r = 0; r < n; ++r) groups.push_back({r});
  return FormatRankGroups(groups);
}

std::string G(const ParallelLayout& layout, RankGroupKind kind) {
  return FormatRankGroups(layout.Groups(kind));
}

TEST(ParallelLayout, ReproducesTheReferenceTableForAttnD1p4t2c2FfnD1p4t1e4) {
  const ParallelLayout l = LayoutOf("megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)");
  ASSERT_EQ(l.world_size(), 16);
  EXPECT_EQ(G(l, RankGroupKind::kPipeline), "[0,4,8,12] [1,5,9,13] [2,6,10,14] [3,7,11,15]");
  EXPECT_EQ(G(l, RankGroupKind::kExpertTensorExpertPipeline),
            "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]");
  EXPECT_EQ(G(l, RankGroupKind::kTensor),
            "[0,1] [2,3] [4,5] [6,7] [8,9] [10,11] [12,13] [14,15]");
  EXPECT_EQ(G(l, RankGroupKind::kContext),
            "[0,2] [1,3] [4,6] [5,7] [8,10] [9,11] [12,14] [13,15]");
  EXPECT_EQ(G(l, RankGroupKind::kData), Singletons(16));
  EXPECT_EQ(G(l, RankGroupKind::kDataContext), G(l, RankGroupKind::kContext));
  EXPECT_EQ(G(l, RankGroupKind::kTensorContext),
            "[0,1,2,3] [4,5,6,7] [8,9,10,11] [12,13,14,15]");
  EXPECT_EQ(G(l, RankGroupKind::kExpert), "[0,1,2,3] [4,5,6,7] [8,9,10,11] [12,13,14,15]");
  EXPECT_EQ(G(l, RankGroupKind::kExpertTensor), Singletons(16));
  EXPECT_EQ(G(l, RankGroupKind::kExpertData), Singletons(16));
  EXPECT_EQ(G(l, RankGroupKind::kExpertTensorExpert), G(l, RankGroupKind::kExpert));
  EXPECT_EQ(G(l, RankGroupKind::kEmbedding), "[0,12] [1,13] [2,14] [3,15]");
  // "PP stage s = ranks 4s..4s+3 (rank = tp + 2*cp + 4*pp)".
  const RankCoordinates c = l.Coordinates(13);
  EXPECT_EQ(c.tp, 1);
  EXPECT_EQ(c.cp, 0);
  EXPECT_EQ(c.pp, 3);
  EXPECT_EQ(c.ep, 1);
  EXPECT_EQ(c.edp, 0);
}

TEST(ParallelLayout, ReproducesTheReferenceTableForAttnD2p2t2c2FfnD2p2t1e4) {
  const ParallelLayout l = LayoutOf("megatron:(attn:d2p2t2c2|ffn:d2p2t1e4)");
  ASSERT_EQ(l.world_size(), 16);
  // The reference lists these groups up to "..."; the full lists follow
  // rank = tp + 2*cp + 4*dp + 8*pp.
  EXPECT_THAT(G(l, RankGroupKind::kTensor), StartsWith("[0,1] [2,3]"));
  EXPECT_EQ(G(l, RankGroupKind::kTensor),
            "[0,1] [2,3] [4,5] [6,7] [8,9] [10,11] [12,13] [14,15]");
  EXPECT_EQ(G(l, RankGroupKind::kContext),
            "[0,2] [1,3] [4,6] [5,7] [8,10] [9,11] [12,14] [13,15]");
  EXPECT_THAT(G(l, RankGroupKind::kData), StartsWith("[0,4] [1,5] [2,6] [3,7] [8,12]"));
  EXPECT_EQ(G(l, RankGroupKind::kData),
            "[0,4] [1,5] [2,6] [3,7] [8,12] [9,13] [10,14] [11,15]");
  EXPECT_EQ(G(l, RankGroupKind::kDataContext),
            "[0,2,4,6] [1,3,5,7] [8,10,12,14] [9,11,13,15]");
  EXPECT_EQ(G(l, RankGroupKind::kExpert), "[0,1,2,3] [4,5,6,7] [8,9,10,11] [12,13,14,15]");
  EXPECT_EQ(G(l, RankGroupKind::kExpertData),
            "[0,4] [1,5] [2,6] [3,7] [8,12] [9,13] [10,14] [11,15]");
  EXPECT_THAT(G(l, RankGroupKind::kPipeline), StartsWith("[0,8] [1,9]"));
  EXPECT_EQ(G(l, RankGroupKind::kPipeline),
            "[0,8] [1,9] [2,10] [3,11] [4,12] [5,13] [6,14] [7,15]");
}

// Every kind partitions the world into equal groups whose size is the product
// of the kind's dims; PP groups agree; ETPxEP sits inside TPxCPxDP (folding).
TEST(ParallelLayout, GroupsPartitionTheWorldAndFoldExpertsIntoAttention) {
  for (const char* text :
       {"megatron:(attn:d2p2t2c2|ffn:d2p2t2e2)", "megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)",
        "megatron:(attn:d1p12t4|ffn:d1p12e4)", "megatron:d2p2t4e2c4", "megatron:d2p2t4e4",
        "megatron:(attn:d4p4t2|ffn:d2p4e4)", "megatron:(attn:d2p1t4|ffn:d1p1t2e4)",
        "megatron:(attn:d8|ffn:e8)", "archon:d2p2e2", "fsdp:d4c2"}) {
    SCOPED_TRACE(text);
    const ParallelLayout l = LayoutOf(text);
    for (RankGroupKind kind : AllRankGroupKinds()) {
      if (kind == RankGroupKind::kEmbedding) continue;
      SCOPED_TRACE(std::string(RankGroupName(kind)));
      std::set<int> seen;
      const RankGroups groups = l.Groups(kind);
      for (const std::vector<int>& g : groups) {
        EXPECT_EQ(g.size(), groups[0].size());
        for (int r : g) EXPECT_TRUE(seen.insert(r).second) << "rank " << r << " twice";
      }
      EXPECT_EQ(static_cast<int>(seen.size()), l.world_size());
    }
    const ParallelDims& d = l.dims();
    EXPECT_EQ(l.Groups(RankGroupKind::kExpertTensorExpert)[0].size(),
              static_cast<size_t>(d.etp * d.ep));
    EXPECT_EQ(l.Groups(RankGroupKind::kDataContext)[0].size(), static_cast<size_t>(d.dp * d.cp));
    EXPECT_EQ(l.Groups(RankGroupKind::kExpertData)[0].size(),
              static_cast<size_t>(d.ExpertDataParallel()));
    for (int rank = 0; rank < l.world_size(); ++rank) {
      std::vector<int> outer = l.GroupOf(RankGroupKind::kTensorDataContext, rank);
      for (int r : l.GroupOf(RankGroupKind::kExpertTensorExpert, rank)) {
        EXPECT_NE(std::find(outer.begin(), outer.end(), r), outer.end())
            << "rank " << rank << ": etp-ep peer " << r << " is not in its tp-dp-cp group";
      }
      EXPECT_EQ(l.Coordinates(rank).pp, rank / (l.world_size() / d.pp));
    }
  }
}

TEST(ParallelLayout, RejectsDimsWhoseExpertLayoutDoesNotTileTheWorld) {
  ParallelDims dims;
  dims.dp = 2;
  dims.ep = 4;
  absl::StatusOr<ParallelLayout> layout = ParallelLayout::Create(dims);
  ASSERT_FALSE(layout.ok());
  EXPECT_THAT(std::string(layout.status().message()),
              ::testing::HasSubstr("etp*ep*pp = 4 does not divide the world size 2"));
  dims.ep = 1;
  dims.tp = 0;
  EXPECT_FALSE(ParallelLayout::Create(dims).ok());
}

TEST(OrthogonalRankGroups, MembersShareTheUnmaskedIndices) {
  // sizes (2, 3): rank = a + 2*b. Mask b: groups by a.
  EXPECT_EQ(FormatRankGroups(OrthogonalRankGroups({2, 3}, {false, true})), "[0,2,4] [1,3,5]");
  EXPECT_EQ(FormatRankGroups(OrthogonalRankGroups({2, 3}, {true, false})), "[0,1] [2,3] [4,5]");
  EXPECT_EQ(FormatRankGroups(OrthogonalRankGroups({2, 3}, {true, true})), "[0,1,2,3,4,5]");
}

}  // namespace
}  // namespace moerl
