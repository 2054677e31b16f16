// The data model and the canonical printer; the parser is in parser.cc.
#include "common/alloc_mode/alloc_mode.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace moerl {

absl::string_view BackendName(Backend backend) {
  switch (backend) {
    case Backend::kSglang:
      return "sglang";
    case Backend::kVllm:
      return "vllm";
    case Backend::kFsdp:
      return "fsdp";
    case Backend::kMegatron:
      return "megatron";
    case Backend::kArchon:
      return "archon";
  }
  return "?";
}

bool IsInferenceBackend(Backend backend) {
  return backend == Backend::kSglang || backend == Backend::kVllm;
}

int AllocationMode::TotalGpus() const {
  int total = 0;
  for (const Allocation& a : allocations) total += a.GpuCount();
  return total;
}

std::vector<int> AllocationMode::InferenceIndices() const {
  std::vector<int> out;
  for (int i = 0; i < static_cast<int>(allocations.size()); ++i) {
    if (allocations[i].IsInference()) out.push_back(i);
  }
  return out;
}

std::vector<int> AllocationMode::TrainingIndices() const {
  std::vector<int> out;
  for (int i = 0; i < static_cast<int>(allocations.size()); ++i) {
    if (!allocations[i].IsInference()) out.push_back(i);
  }
  return out;
}

namespace {

// Appends `letter value` when value != 1.
void AppendDim(std::string* out, char letter, int value) {
  if (value != 1) absl::StrAppend(out, std::string(1, letter), value);
}

std::string PlainDims(const ParallelDims& d) {
  std::string out;
  AppendDim(&out, 'd', d.dp);
  AppendDim(&out, 'p', d.pp);
  AppendDim(&out, 't', d.tp);
  AppendDim(&out, 'c', d.cp);
  AppendDim(&out, 'e', d.ep);
  return out.empty() ? "d1" : out;
}

std::string HybridDims(const ParallelDims& d) {
  std::string attn;
  AppendDim(&attn, 'd', d.dp);
  AppendDim(&attn, 'p', d.pp);
  AppendDim(&attn, 't', d.tp);
  AppendDim(&attn, 'c', d.cp);
  if (attn.empty()) attn = "d1";
  std::string ffn;
  AppendDim(&ffn, 'd', d.ExpertDataParallel());
  AppendDim(&ffn, 'p', d.pp);
  AppendDim(&ffn, 't', d.etp);
  AppendDim(&ffn, 'e', d.ep);
  return absl::StrCat("(attn:", attn, "|ffn:", ffn, ")");
}

}  // namespace

std::string ToString(const Allocation& a) {
  std::string out(BackendName(a.backend));
  if (!a.name.empty()) absl::StrAppend(&out, "[", a.name, "]");
  absl::StrAppend(&out, ":", a.dims.etp != 1 ? HybridDims(a.dims) : PlainDims(a.dims));
  return out;
}

std::string ToString(const AllocationMode& mode) {
  std::string out;
  for (size_t i = 0; i < mode.allocations.size(); ++i) {
    const Allocation& a = mode.allocations[i];
    if (i > 0) out += a.colocated() ? "|" : "+";
    out += ToString(a);
  }
  return out;
}

std::string DebugString(const ParallelDims& d) {
  return absl::StrCat("dp=", d.dp, " tp=", d.tp, " pp=", d.pp, " cp=", d.cp, " ep=", d.ep,
                      " etp=", d.etp, " edp=", d.ExpertDataParallel(), " world=", d.WorldSize());
}

}  // namespace moerl
