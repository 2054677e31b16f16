// AllocationMode: which GPUs each model engine gets, parsed from the one-line
// `allocation_mode` string users know from AReaL.
//
//   MOERL_ASSIGN_OR_RETURN(
//       AllocationMode mode,
//       ParseAllocationMode("sglang:d4t4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)"));
//   mode.TotalGpus();                      // 32
//   mode.allocations[1].dims.ep;           // 4
//   ToString(mode);                        // canonical form, parses back to `mode`
//
// Grammar (AReaL's "generation 2", see docs/config.md): a `+` chain of
// components, each a `|` colocation group of allocations
// `backend[name]:dims` or `backend:(attn:dims|ffn:dims)`. The training
// backend may be omitted (`sglang:d4+d4`): pipeline or expert parallelism or
// the hybrid syntax select megatron, anything else fsdp. The old `.`
// separator, `+eval`/`+cpu` and the realhf letter `m` are rejected with a
// hint. Every error is an InvalidArgument status whose message repeats the
// string with a caret under the offending position and says how to fix it.
//
// Values are plain data: copyable, no shared state, thread-compatible.
#ifndef MOERL_COMMON_ALLOC_MODE_ALLOC_MODE_H_
#define MOERL_COMMON_ALLOC_MODE_ALLOC_MODE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moerl {

enum class Backend { kSglang, kVllm, kFsdp, kMegatron, kArchon };

// "sglang", "vllm", "fsdp", "megatron", "archon".
absl::string_view BackendName(Backend backend);
// True for the inference servers (sglang, vllm).
bool IsInferenceBackend(Backend backend);

// Parallel sizes of one allocation; every field is >= 1.
// Attention layout: tp x cp x dp x pp = world. Expert layout (MoE parallel
// folding): etp x ep x edp x pp = the same world, edp derived.
struct ParallelDims {
  int dp = 1;   // data parallel (inference: number of server replicas)
  int tp = 1;   // tensor parallel
  int pp = 1;   // pipeline parallel
  int cp = 1;   // context parallel
  int ep = 1;   // expert parallel (does not add GPUs)
  int etp = 1;  // expert tensor parallel (only the hybrid ffn `t` sets it)

  // dp * tp * pp * cp: GPUs this layout spans.
  int WorldSize() const { return dp * tp * pp * cp; }
  // Expert data parallel, Megatron's world / (etp * ep * pp). AReaL reports
  // dp here when ep == 1; the two differ only when tp * cp != etp and ep is
  // 1, where Megatron's value is the one that shapes the process groups.
  int ExpertDataParallel() const { return WorldSize() / (pp * etp * ep); }

  bool operator==(const ParallelDims& o) const {
    return dp == o.dp && tp == o.tp && pp == o.pp && cp == o.cp && ep == o.ep && etp == o.etp;
  }
  bool operator!=(const ParallelDims& o) const { return !(*this == o); }
};

struct Allocation {
  Backend backend = Backend::kFsdp;
  std::string name;  // empty when unnamed
  ParallelDims dims;
  // Colocated members of a `|` group share the GPUs of the group's first
  // allocation (the anchor), whose index in AllocationMode::allocations is
  // `anchor`; -1 for allocations with their own GPUs.
  int anchor = -1;

  bool colocated() const { return anchor >= 0; }
  bool IsInference() const { return IsInferenceBackend(backend); }
  // GPUs this allocation adds to the total: 0 when colocated.
  int GpuCount() const { return colocated() ? 0 : dims.WorldSize(); }
  // GPUs one inference server replica uses (tp * pp).
  int InstanceSize() const { return dims.tp * dims.pp; }

  bool operator==(const Allocation& o) const {
    return backend == o.backend && name == o.name && dims == o.dims && anchor == o.anchor;
  }
  bool operator!=(const Allocation& o) const { return !(*this == o); }
};

struct AllocationMode {
  std::vector<Allocation> allocations;

  // GPUs the whole string needs (colocated members count 0).
  int TotalGpus() const;
  // Indices of the inference / training allocations, in string order.
  std::vector<int> InferenceIndices() const;
  std::vector<int> TrainingIndices() const;

  bool operator==(const AllocationMode& o) const { return allocations == o.allocations; }
  bool operator!=(const AllocationMode& o) const { return !(*this == o); }
};

struct ParseOptions {
  // AReaL >= v1.0.3 ("generation 3") requires every training allocation to
  // name its backend; set this to get its errors for `d4`, `[actor]:d4` and
  // bare hybrids instead of auto-selection.
  bool require_explicit_backend = false;
};

// Largest world size (and GPU total) accepted; bigger values are errors, which
// also keeps every product inside `int`.
inline constexpr int kMaxWorldSize = 1 << 20;

// Parses a full allocation_mode string (`+` chains, `|` groups, names).
absl::StatusOr<AllocationMode> ParseAllocationMode(absl::string_view text,
                                                   const ParseOptions& options = {});

// Parses one allocation, as in AReaL's per-engine `actor.backend` fields:
// a `+` or `|` is an error that says which field each part belongs in.
absl::StatusOr<Allocation> ParseAllocation(absl::string_view text,
                                           const ParseOptions& options = {});

// Canonical text. Backends are always written out, dims in the order
// d,p,t,c,e with 1s left out (`d1` when all are 1), the hybrid form only when
// etp > 1, no spaces. ParseAllocationMode(ToString(m)) == m.
std::string ToString(const AllocationMode& mode);
// One allocation, without its colocation: `fsdp[actor]:d4t2`.
std::string ToString(const Allocation& allocation);
// `dp=4 tp=2 pp=1 cp=1 ep=1 etp=1 edp=8 world=8`, for logs and test failures.
std::string DebugString(const ParallelDims& dims);

}  // namespace moerl

#endif  // MOERL_COMMON_ALLOC_MODE_ALLOC_MODE_H_
