#include "trainer/parallel/parallel_state.h"

#include <unistd.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status.h"

namespace moerl {
namespace {

// "1, 2, 4, 8": sizes that divide `n`, for error messages.
std::string Divisors(int64_t n) {
  std::vector<int64_t> out;
  for (int64_t d = 1; d <= n; ++d) {
    if (n % d == 0) out.push_back(d);
  }
  return absl::StrJoin(out, ", ");
}

absl::Status CheckDivides(const ParallelDims& dims, const char* dim_name, int dim, const char* key,
                          int64_t value) {
  if (dim <= 1 || value % dim == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the layout ", DebugString(dims), " does not fit the model: ", dim_name, "=", dim, " does not divide ", key,
      "=", value, " (config.json); ", dim_name, " must be one of ", Divisors(value)));
}

}  // namespace

absl::StatusOr<ParallelDims> TrainingDims(const AllocationMode& mode) {
  std::vector<int> training = mode.TrainingIndices();
  if (training.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("allocation_mode \"", ToString(mode), "\" has ", training.size(),
                                                   " training allocations; the trainer needs exactly one"));
  }
  const Allocation& a = mode.allocations[training[0]];
  if (a.backend != Backend::kMegatron && a.backend != Backend::kFsdp) {
    return absl::InvalidArgumentError(absl::StrCat("training allocation \"", ToString(a), "\" uses backend ",
                                                   BackendName(a.backend), "; moerl trains with megatron or fsdp"));
  }
  return a.dims;
}

absl::Status ValidateLayoutForModel(const ParallelDims& dims, const ModelConfig& model) {
  if (dims.ep > 1 && model.num_experts == 0) {
    return absl::InvalidArgumentError(absl::StrCat("the layout ", DebugString(dims), " has ep=", dims.ep,
                                                   " but the model (", model.model_type,
                                                   ") has no experts; drop `e` from allocation_mode"));
  }
  if (dims.etp > 1 && model.num_experts == 0) {
    return absl::InvalidArgumentError(absl::StrCat("the layout ", DebugString(dims), " has etp=", dims.etp,
                                                   " but the model has no experts"));
  }
  MOERL_RETURN_IF_ERROR(CheckDivides(dims, "ep", dims.ep, "num_experts", model.num_experts));
  MOERL_RETURN_IF_ERROR(CheckDivides(dims, "tp", dims.tp, "num_attention_heads", model.num_attention_heads));
  MOERL_RETURN_IF_ERROR(CheckDivides(dims, "tp", dims.tp, "num_key_value_heads", model.num_key_value_heads));
  MOERL_RETURN_IF_ERROR(CheckDivides(dims, "pp", dims.pp, "num_hidden_layers", model.num_hidden_layers));
  MOERL_RETURN_IF_ERROR(CheckDivides(dims, "etp", dims.etp, "moe_intermediate_size", model.moe_intermediate_size));
  return absl::OkStatus();
}

absl::StatusOr<ParallelState> ParallelState::FromEnvironment(const AllocationMode& mode, const ModelConfig& model,
                                                             const ParallelOptions& options, const EnvLookup& env) {
  MOERL_ASSIGN_OR_RETURN(ParallelDims dims, TrainingDims(mode));
  MOERL_RETURN_IF_ERROR(ValidateLayoutForModel(dims, model));
  MOERL_RETURN_IF_ERROR(ParallelLayout::Create(dims).status());
  MOERL_ASSIGN_OR_RETURN(RankEnvironment rank_env, ReadRankEnvironment(env, options.slurm_port));
  if (rank_env.world_size != dims.WorldSize()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "allocation_mode \"", ToString(mode), "\" trains on ", dims.WorldSize(), " rank(s) but the launcher (",
        rank_env.launcher, ") started ", rank_env.world_size,
        "; start as many processes as the training allocation has GPUs (tools/launch_trainer.sh computes it)"));
  }
  std::shared_ptr<Rendezvous> rendezvous;
  ParallelOptions resolved = options;
  if (rank_env.world_size > 1) {
    MOERL_ASSIGN_OR_RETURN(rendezvous, Rendezvous::ConnectTcp(rank_env, options.comm));
    if (resolved.comm.gloo_hostname.empty() && rank_env.local_world_size != rank_env.world_size) {
      char host[256] = {0};
      if (gethostname(host, sizeof(host) - 1) == 0) resolved.comm.gloo_hostname = host;
    }
  }
  MOERL_ASSIGN_OR_RETURN(ParallelState state, Create(dims, rank_env.rank, std::move(rendezvous), resolved));
  state.local_rank_ = rank_env.local_rank;
  return state;
}

absl::StatusOr<ParallelState> ParallelState::Create(const ParallelDims& dims, int rank,
                                                    std::shared_ptr<Rendezvous> rendezvous,
                                                    const ParallelOptions& options) {
  MOERL_ASSIGN_OR_RETURN(ParallelLayout layout, ParallelLayout::Create(dims));
  if (rank < 0 || rank >= layout.world_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is outside the layout ", DebugString(dims)));
  }
  if (layout.world_size() > 1 && rendezvous == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("a world of ", layout.world_size(), " needs a rendezvous"));
  }
  ParallelState state(layout, rank);
  state.coordinates_ = layout.Coordinates(rank);
  if (rendezvous) rendezvous->StartHeartbeat(rank, options.comm.heartbeat_interval);
  // One global order (kinds, then groups in layout order), identical on every
  // rank; each rank builds the groups that hold it, reusing a communicator
  // when a kind has the same members as an earlier one.
  std::map<std::vector<int>, std::shared_ptr<ProcessGroup>> by_members;
  for (RankGroupKind kind : AllRankGroupKinds()) {
    const std::string kind_name(RankGroupName(kind));
    for (const std::vector<int>& members : layout.Groups(kind)) {
      if (std::find(members.begin(), members.end(), rank) == members.end()) continue;
      auto it = by_members.find(members);
      if (it != by_members.end()) {
        state.groups_[kind] = it->second->WithKind(kind_name);
        continue;
      }
      MOERL_ASSIGN_OR_RETURN(std::shared_ptr<ProcessGroup> group,
                             ProcessGroup::Create(members, rank, kind_name, rendezvous, options.comm));
      by_members[members] = group;
      state.groups_[kind] = group;
    }
    // The embedding kind lists only pipeline ends; other ranks get a group of one.
    if (!state.groups_.count(kind)) {
      MOERL_ASSIGN_OR_RETURN(std::shared_ptr<ProcessGroup> alone,
                             ProcessGroup::Create({rank}, rank, kind_name, rendezvous, options.comm));
      state.groups_[kind] = alone;
    }
  }
  return state;
}

ParallelState ParallelState::SingleProcess() {
  auto state = Create(ParallelDims{}, 0, nullptr);
  MOERL_CHECK(state.ok()) << state.status();
  return *std::move(state);
}

std::shared_ptr<const ProcessGroup> ParallelState::shared_group(RankGroupKind kind) const {
  auto it = groups_.find(kind);
  MOERL_CHECK(it != groups_.end()) << "no group of kind " << RankGroupName(kind);
  return it->second;
}

std::map<RankGroupKind, CommCounts> ParallelState::CommBytes() const {
  std::map<RankGroupKind, CommCounts> out;
  for (const auto& [kind, group] : groups_) out[kind] = group->comm_counts();
  return out;
}

}  // namespace moerl
