// ParallelState: this rank's place in a Megatron-style layout (MoE parallel
// folding) and one ProcessGroup for every rank-group kind that
// common/parallel_layout names. Built once at start, passed explicitly to
// whatever communicates; no globals.
//
//   MOERL_ASSIGN_OR_RETURN(ParallelState state, ParallelState::FromEnvironment(mode, model_config));
//   state.group(RankGroupKind::kExpert).AllToAll(...);
//   state.coordinates().dp;   // which data shard this rank reads
//
// FromEnvironment takes the training allocation of `mode` (megatron, or fsdp:
// the same groups; the trainer then shards the optimizer state), checks that it fits the model
// (experts % ep, heads and kv-heads % tp, layers % pp) and that its world
// matches the launcher's, all before any communication, then meets the other
// ranks at the TCPStore named by torchrun's or Slurm's variables and builds
// the groups. Without launcher variables it is the one-process state.
//
// Groups with identical members share one communicator; groups of one rank
// have none (their collectives are local). Every rank builds every group it
// belongs to in one global order, so construction cannot deadlock.
//
// Copyable (shared groups); thread-compatible. The groups' threading rule is
// in process_groups.h.
#ifndef MOERL_TRAINER_PARALLEL_PARALLEL_STATE_H_
#define MOERL_TRAINER_PARALLEL_PARALLEL_STATE_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/parallel_layout/parallel_layout.h"
#include "trainer/model/config.h"
#include "trainer/parallel/process_groups.h"

namespace moerl {

struct ParallelOptions {
  CommOptions comm;
  // MASTER_PORT when Slurm launched the job and MASTER_PORT is unset.
  int slurm_port = 29500;
};

class ParallelState {
 public:
  // The layout of the one training allocation of `mode`, checked against
  // `model`, on the ranks the environment describes.
  static absl::StatusOr<ParallelState> FromEnvironment(const AllocationMode& mode, const ModelConfig& model,
                                                       const ParallelOptions& options = {},
                                                       const EnvLookup& env = ProcessEnvironment());

  // This rank of `dims`, meeting the others at `rendezvous` (null only for a
  // world of 1). Blocks until every member of every group of this rank has
  // joined. Used by FromEnvironment and by in-process tests.
  static absl::StatusOr<ParallelState> Create(const ParallelDims& dims, int rank,
                                              std::shared_ptr<Rendezvous> rendezvous,
                                              const ParallelOptions& options = {});

  // World 1: every group is {0}; nothing communicates.
  static ParallelState SingleProcess();

  const ParallelDims& dims() const { return layout_.dims(); }
  const ParallelLayout& layout() const { return layout_; }
  int rank() const { return rank_; }
  // This process's index on its host (torchrun's LOCAL_RANK): the GPU to
  // use. Equal to rank() for states built by Create.
  int local_rank() const { return local_rank_; }
  int world_size() const { return layout_.world_size(); }
  const RankCoordinates& coordinates() const { return coordinates_; }
  // Which share of each global batch this rank reads: ranks that differ only
  // in tp, cp or pp read the same sequences (cp and sequence parallel split
  // them further inside the model).
  int data_shard() const { return coordinates_.dp; }
  int num_data_shards() const { return dims().dp; }

  const ProcessGroup& group(RankGroupKind kind) const { return *shared_group(kind); }
  std::shared_ptr<const ProcessGroup> shared_group(RankGroupKind kind) const;

  // What this rank's calls on each kind's group sent so far (counters of
  // process_groups.h; kinds with the same members count apart, each the calls
  // made through it). Take two and subtract for one step.
  std::map<RankGroupKind, CommCounts> CommBytes() const;

 private:
  ParallelState(ParallelLayout layout, int rank) : layout_(std::move(layout)), rank_(rank), local_rank_(rank) {}

  ParallelLayout layout_;
  int rank_;
  int local_rank_;
  RankCoordinates coordinates_;
  std::map<RankGroupKind, std::shared_ptr<const ProcessGroup>> groups_;
};

// The dims of the single training allocation of `mode`. InvalidArgument when
// there is none or more than one, or for a backend other than megatron/fsdp.
absl::StatusOr<ParallelDims> TrainingDims(const AllocationMode& mode);

// InvalidArgument naming the key, both values and the sizes that would work,
// when `dims` cannot split `model`: num_experts % ep, num_attention_heads %
// tp, num_key_value_heads % tp, num_hidden_layers % pp, ep > 1 on a dense
// model, etp > 1 without experts.
absl::Status ValidateLayoutForModel(const ParallelDims& dims, const ModelConfig& model);

}  // namespace moerl

#endif  // MOERL_TRAINER_PARALLEL_PARALLEL_STATE_H_
