#include "common/parallel_layout/parallel_layout.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"

namespace moerl {
namespace {

// Generator axes in Megatron's order "tp-cp-ep-dp-pp".
enum Axis { kTp = 0, kCp = 1, kEp = 2, kDp = 3, kPp = 4 };

struct KindSpec {
  RankGroupKind kind;
  const char* name;
  bool expert;  // which generator
  std::vector<Axis> axes;
};

const std::vector<KindSpec>& Specs() {
  static const std::vector<KindSpec>* specs = new std::vector<KindSpec>{
      {RankGroupKind::kTensor, "tp", false, {kTp}},
      {RankGroupKind::kContext, "cp", false, {kCp}},
      {RankGroupKind::kData, "dp", false, {kDp}},
      {RankGroupKind::kPipeline, "pp", false, {kPp}},
      {RankGroupKind::kDataContext, "dp-cp", false, {kCp, kDp}},
      {RankGroupKind::kTensorContext, "tp-cp", false, {kTp, kCp}},
      {RankGroupKind::kTensorDataContext, "tp-dp-cp", false, {kTp, kCp, kDp}},
      {RankGroupKind::kModel, "tp-pp", false, {kTp, kPp}},
      {RankGroupKind::kEmbedding, "embd", false, {kPp}},
      {RankGroupKind::kExpert, "ep", true, {kEp}},
      {RankGroupKind::kExpertTensor, "etp", true, {kTp}},
      {RankGroupKind::kExpertData, "edp", true, {kDp}},
      {RankGroupKind::kExpertTensorExpert, "etp-ep", true, {kTp, kEp}},
      {RankGroupKind::kExpertTensorExpertPipeline, "etp-ep-pp", true, {kTp, kEp, kPp}},
  };
  return *specs;
}

const KindSpec& SpecOf(RankGroupKind kind) {
  for (const KindSpec& s : Specs()) {
    if (s.kind == kind) return s;
  }
  MOERL_CHECK(false) << "unknown RankGroupKind " << static_cast<int>(kind);
  return Specs()[0];
}

std::vector<int> GeneratorSizes(const ParallelDims& d, bool expert) {
  if (expert) return {d.etp, 1, d.ep, d.ExpertDataParallel(), d.pp};
  return {d.tp, d.cp, 1, d.dp, d.pp};
}

// Mixed-radix digits of `index`, fastest first.
std::vector<int> Decompose(int index, const std::vector<int>& shape) {
  std::vector<int> digits(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    digits[i] = index % shape[i];
    index /= shape[i];
  }
  return digits;
}

}  // namespace

std::vector<RankGroupKind> AllRankGroupKinds() {
  std::vector<RankGroupKind> kinds;
  for (const KindSpec& s : Specs()) kinds.push_back(s.kind);
  return kinds;
}

absl::string_view RankGroupName(RankGroupKind kind) { return SpecOf(kind).name; }

RankGroups OrthogonalRankGroups(const std::vector<int>& sizes, const std::vector<bool>& mask) {
  MOERL_CHECK(sizes.size() == mask.size()) << sizes.size() << " sizes, " << mask.size() << " mask bits";
  std::vector<int> masked_shape, masked_stride, unmasked_shape, unmasked_stride;
  int stride = 1;
  for (size_t i = 0; i < sizes.size(); ++i) {
    (mask[i] ? masked_shape : unmasked_shape).push_back(sizes[i]);
    (mask[i] ? masked_stride : unmasked_stride).push_back(stride);
    stride *= sizes[i];
  }
  const int world = stride;
  int group_size = 1;
  for (int s : masked_shape) group_size *= s;
  RankGroups groups(world / group_size);
  for (int g = 0; g < static_cast<int>(groups.size()); ++g) {
    const std::vector<int> outer = Decompose(g, unmasked_shape);
    int base = 0;
    for (size_t i = 0; i < outer.size(); ++i) base += outer[i] * unmasked_stride[i];
    groups[g].reserve(group_size);
    for (int r = 0; r < group_size; ++r) {
      const std::vector<int> inner = Decompose(r, masked_shape);
      int rank = base;
      for (size_t i = 0; i < inner.size(); ++i) rank += inner[i] * masked_stride[i];
      groups[g].push_back(rank);
    }
  }
  return groups;
}

absl::StatusOr<ParallelLayout> ParallelLayout::Create(const ParallelDims& dims) {
  for (int v : {dims.dp, dims.tp, dims.pp, dims.cp, dims.ep, dims.etp}) {
    if (v < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("parallel layout: every size must be >= 1, got ", DebugString(dims)));
    }
  }
  long long world = 1;
  for (int v : {dims.dp, dims.tp, dims.pp, dims.cp}) {
    world *= v;
    if (world > kMaxWorldSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("parallel layout: world size exceeds ", kMaxWorldSize));
    }
  }
  const long long expert_block = static_cast<long long>(dims.etp) * dims.ep * dims.pp;
  if (expert_block > world || world % expert_block != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "parallel layout: etp*ep*pp = ", expert_block, " does not divide the world size ", world,
        " (dp=", dims.dp, " tp=", dims.tp, " pp=", dims.pp, " cp=", dims.cp, ")"));
  }
  return ParallelLayout(dims);
}

RankGroups ParallelLayout::Groups(RankGroupKind kind) const {
  const KindSpec& spec = SpecOf(kind);
  std::vector<bool> mask(5, false);
  for (Axis a : spec.axes) mask[a] = true;
  RankGroups groups = OrthogonalRankGroups(GeneratorSizes(dims_, spec.expert), mask);
  if (kind == RankGroupKind::kEmbedding) {
    for (std::vector<int>& g : groups) {
      if (g.size() > 1) g = {g.front(), g.back()};
    }
  }
  return groups;
}

std::vector<int> ParallelLayout::GroupOf(RankGroupKind kind, int rank) const {
  MOERL_CHECK(rank >= 0 && rank < world_size()) << "rank " << rank << " of " << world_size();
  for (std::vector<int>& g : Groups(kind)) {
    for (int r : g) {
      if (r == rank) return std::move(g);
    }
  }
  return {};  // only embedding groups leave middle pipeline ranks out
}

RankCoordinates ParallelLayout::Coordinates(int rank) const {
  MOERL_CHECK(rank >= 0 && rank < world_size()) << "rank " << rank << " of " << world_size();
  const std::vector<int> a = Decompose(rank, GeneratorSizes(dims_, false));
  const std::vector<int> e = Decompose(rank, GeneratorSizes(dims_, true));
  RankCoordinates c;
  c.tp = a[kTp];
  c.cp = a[kCp];
  c.dp = a[kDp];
  c.pp = a[kPp];
  c.etp = e[kTp];
  c.ep = e[kEp];
  c.edp = e[kDp];
  return c;
}

std::string FormatRankGroups(const RankGroups& groups) {
  std::vector<std::string> parts;
  parts.reserve(groups.size());
  for (const std::vector<int>& g : groups) parts.push_back(absl::StrCat("[", absl::StrJoin(g, ","), "]"));
  return absl::StrJoin(parts, " ");
}

}  // namespace moerl
