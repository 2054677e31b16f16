// ParallelLayout: the rank groups of a Megatron-style 5D layout with MoE
// parallel folding, computed from an allocation's ParallelDims. Pure
// arithmetic, no communication: the trainer builds its process groups from
// these lists, the planner prints them.
//
//   MOERL_ASSIGN_OR_RETURN(ParallelLayout layout, ParallelLayout::Create(dims));
//   layout.Groups(RankGroupKind::kExpert);      // [[0,1,2,3], [4,5,6,7], ...]
//   layout.GroupOf(RankGroupKind::kTensor, 5);  // [4, 5]
//
// Order `tp-cp-ep-dp-pp` (the leftmost index varies fastest), as AReaL passes
// to Megatron's initialize_model_parallel. Attention uses the generator
// (tp=TP, cp=CP, ep=1, dp=DP, pp=PP), experts (tp=ETP, cp=1, ep=EP,
// dp=EDP, pp=PP); both span the same world and share the PP groups.
//
// Immutable after Create; safe to share between threads.
#ifndef MOERL_COMMON_PARALLEL_LAYOUT_PARALLEL_LAYOUT_H_
#define MOERL_COMMON_PARALLEL_LAYOUT_PARALLEL_LAYOUT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/alloc_mode/alloc_mode.h"

namespace moerl {

enum class RankGroupKind {
  // Attention ("dense") generator.
  kTensor,             // tp
  kContext,            // cp
  kData,               // dp (without cp)
  kPipeline,           // pp (identical for both generators)
  kDataContext,        // dp-cp: dense gradient reduce / distributed-optimizer shard
  kTensorContext,      // tp-cp: one stage's attention block; router aux-loss counts
  kTensorDataContext,  // tp-dp-cp: global aux loss
  kModel,              // tp-pp: model-parallel group
  kEmbedding,          // first and last rank of each pp group (tied embedding grads)
  // Expert generator.
  kExpert,                      // ep: the token all-to-all group
  kExpertTensor,                // etp
  kExpertData,                  // edp: expert gradient reduce / optimizer shard
  kExpertTensorExpert,          // etp-ep: all-gather dispatcher, token-count metadata
  kExpertTensorExpertPipeline,  // etp-ep-pp
};

// Every kind, in the order above.
std::vector<RankGroupKind> AllRankGroupKinds();
// Megatron's token for the kind: "tp", "dp-cp", "ep", "etp-ep", "edp", ...
absl::string_view RankGroupName(RankGroupKind kind);

// Where one rank sits in both generators.
struct RankCoordinates {
  int tp = 0, cp = 0, dp = 0, pp = 0;  // attention
  int etp = 0, ep = 0, edp = 0;        // experts (pp shared)
};

using RankGroups = std::vector<std::vector<int>>;

class ParallelLayout {
 public:
  // InvalidArgument if a size is < 1, the world is larger than kMaxWorldSize,
  // or etp * ep * pp does not divide the world.
  static absl::StatusOr<ParallelLayout> Create(const ParallelDims& dims);

  const ParallelDims& dims() const { return dims_; }
  int world_size() const { return dims_.WorldSize(); }

  // All groups of `kind`; together they partition [0, world_size).
  RankGroups Groups(RankGroupKind kind) const;
  // The group of `kind` that holds `rank` (0 <= rank < world_size).
  std::vector<int> GroupOf(RankGroupKind kind, int rank) const;
  RankCoordinates Coordinates(int rank) const;

 private:
  explicit ParallelLayout(const ParallelDims& dims) : dims_(dims) {}
  ParallelDims dims_;
};

// Megatron's generate_masked_orthogonal_rank_groups: `sizes` in fastest-first
// order, `mask` selects the dimensions that vary inside a group. Members of a
// group share the indices of the unmasked dimensions; groups are listed by
// those indices, fastest-first; members by the masked ones.
RankGroups OrthogonalRankGroups(const std::vector<int>& sizes, const std::vector<bool>& mask);

// "[0,1] [2,3]", for tables and test failures.
std::string FormatRankGroups(const RankGroups& groups);

}  // namespace moerl

#endif  // MOERL_COMMON_PARALLEL_LAYOUT_PARALLEL_LAYOUT_H_
