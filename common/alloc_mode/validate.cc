// Validation rules and GPU arithmetic (AReaL areal-reference §a.6-a.10),
// turning a SyntaxTree into an AllocationMode, plus the public entry points.
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/alloc_mode/syntax.h"
#include "common/status.h"

namespace moerl {
namespace alloc_mode_internal {
namespace {

// a * b, or -1 when the product passes kMaxWorldSize (both are in range).
long long CheckedProduct(std::initializer_list<int> factors) {
  long long product = 1;
  for (int f : factors) {
    product *= f;
    if (product > kMaxWorldSize) return -1;
  }
  return product;
}

class Builder {
 public:
  Builder(absl::string_view text, const SyntaxTree& tree, const ParseOptions& options)
      : text_(text), tree_(tree), options_(options) {}

  absl::StatusOr<AllocationMode> Run() {
    AllocationMode mode;
    int anchor = -1;
    for (size_t i = 0; i < tree_.allocations.size(); ++i) {
      const AllocationSyntax& syntax = tree_.allocations[i];
      Allocation a;
      MOERL_RETURN_IF_ERROR(BuildOne(syntax, &a));
      if (syntax.colocated) {
        a.anchor = anchor;
      } else {
        anchor = static_cast<int>(i);
      }
      mode.allocations.push_back(std::move(a));
    }
    MOERL_RETURN_IF_ERROR(CheckColocation(mode));
    MOERL_RETURN_IF_ERROR(CheckNames(mode));
    if (mode.TotalGpus() > kMaxWorldSize) {
      return Error(0, text_.size(), absl::StrCat("the allocations need ", mode.TotalGpus(),
                                                 " GPUs, more than the limit ", kMaxWorldSize),
                   "use a realistic GPU count");
    }
    return mode;
  }

 private:
  absl::Status Error(size_t pos, size_t len, absl::string_view what, absl::string_view fix) const {
    return CaretError(text_, pos, len, what, fix);
  }

  absl::Status TooLarge(const AllocationSyntax& s) const {
    return Error(s.pos, s.len,
                 absl::StrCat("this allocation spans more than ", kMaxWorldSize, " GPUs"),
                 "use a realistic GPU count");
  }

  absl::Status BuildHybrid(const AllocationSyntax& s, ParallelDims* d) const {
    d->dp = s.attn.Value('d');
    d->tp = s.attn.Value('t');
    d->pp = s.attn.Value('p');
    d->cp = s.attn.Value('c');
    if (const DimToken* ffn_pp = s.ffn.Find('p'); ffn_pp && ffn_pp->value != d->pp) {
      return Error(ffn_pp->pos, ffn_pp->len,
                   absl::StrCat("pipeline parallel size for attention and FFN must be identical; "
                                "attention has p", d->pp, ", FFN has p", ffn_pp->value),
                   "use the same p in both parts, or leave p out of ffn (it inherits attn's)");
    }
    const long long world = CheckedProduct({d->dp, d->tp, d->pp, d->cp});
    if (world < 0) return TooLarge(s);
    d->etp = s.ffn.Value('t');
    d->ep = s.ffn.Value('e');
    const long long per_expert_replica = CheckedProduct({d->ep, d->etp, d->pp});
    long long edp = 0;
    if (const DimToken* ffn_dp = s.ffn.Find('d')) {
      edp = ffn_dp->value;
    } else {
      if (per_expert_replica < 0 || world % per_expert_replica != 0) {
        return Error(s.ffn.pos, s.ffn.len,
                     absl::StrCat("cannot derive the expert data parallel size: attention world "
                                  "size ", world, " (d*t*p*c) is not divisible by ffn e*t*p = ",
                                  per_expert_replica < 0 ? std::string("a huge number")
                                                         : absl::StrCat(per_expert_replica)),
                     absl::StrCat("choose ffn e and t so that e*t*p divides ", world));
      }
      edp = world / per_expert_replica;
    }
    const long long expert_world =
        per_expert_replica < 0 ? -1 : CheckedProduct({static_cast<int>(edp), static_cast<int>(per_expert_replica)});
    if (expert_world != world) {
      return Error(s.ffn.pos, s.ffn.len,
                   absl::StrCat("world size for expert and attention modules must be identical; "
                                "attention has ", world, " (d*t*p*c), expert has ",
                                expert_world < 0 ? std::string("more than the limit")
                                                 : absl::StrCat(expert_world),
                                " (d*t*p*e)"),
                   absl::StrCat("both layouts fold onto the same GPUs: make ffn d*t*p*e equal ",
                                world, ", or leave ffn d out to derive it"));
    }
    return absl::OkStatus();
  }

  absl::Status BuildPlain(const AllocationSyntax& s, ParallelDims* d) const {
    d->dp = s.dims.Value('d');
    d->tp = s.dims.Value('t');
    d->pp = s.dims.Value('p');
    d->cp = s.dims.Value('c');
    d->ep = s.dims.Value('e');
    if (CheckedProduct({d->dp, d->tp, d->pp, d->cp}) < 0) return TooLarge(s);
    return absl::OkStatus();
  }

  absl::Status BuildOne(const AllocationSyntax& s, Allocation* a) const {
    ParallelDims& d = a->dims;
    MOERL_RETURN_IF_ERROR(s.hybrid ? BuildHybrid(s, &d) : BuildPlain(s, &d));
    if (s.backend) {
      a->backend = *s.backend;
    } else if (options_.require_explicit_backend) {
      const std::string what =
          s.hybrid ? "the hybrid MoE form needs an explicit backend"
          : s.name.empty() ? "bare dimensions need a backend prefix"
                           : "a named allocation needs a backend prefix";
      return Error(s.pos, s.len, what,
                   s.hybrid ? "write e.g. 'megatron:(attn:d1p12t4|ffn:d1p12e4)'"
                            : "write e.g. 'fsdp:d4', 'fsdp[actor]:d4' or 'megatron:d4t2p2'");
    } else {
      // AReaL's automatic choice: pipeline or expert parallelism needs megatron.
      a->backend = (s.hybrid || d.pp > 1 || d.ep > 1) ? Backend::kMegatron : Backend::kFsdp;
    }
    a->name = s.name;
    if (a->backend == Backend::kFsdp) {
      if (s.hybrid) {
        return Error(s.pos, s.len, "the attn|ffn hybrid form needs megatron or archon, not fsdp",
                     "write 'megatron:(attn:...|ffn:...)'");
      }
      for (char letter : {'p', 'e'}) {
        const DimToken* t = s.dims.Find(letter);
        if (t && t->value > 1) {
          return Error(t->pos, t->len,
                       absl::StrCat("FSDP backend only supports data/tensor/context parallelism; "
                                    "got ", DebugString(d)),
                       "use 'megatron:...' or 'archon:...' for pipeline or expert parallelism, or "
                       "drop the p/e size");
        }
      }
    }
    if (!s.hybrid && d.ep > 1 && d.WorldSize() % (d.pp * d.ep) != 0) {
      const DimToken* e = s.dims.Find('e');
      return Error(e->pos, e->len,
                   absl::StrCat("expert model parallel size p*e = ", d.pp * d.ep,
                                " does not divide the world size d*t*p*c = ", d.WorldSize()),
                   "make d*t*c a multiple of e (the expert layout must tile the same GPUs)");
    }
    return absl::OkStatus();
  }

  absl::Status CheckColocation(const AllocationMode& mode) const {
    for (size_t i = 0; i < mode.allocations.size(); ++i) {
      const Allocation& a = mode.allocations[i];
      if (!a.colocated()) continue;
      const AllocationSyntax& s = tree_.allocations[i];
      if (a.name.empty()) {
        return Error(s.pos, s.len, "an allocation after '|' in a colocation group has no name",
                     "name every allocation after the first of a '|' group, e.g. "
                     "'fsdp[actor]:d4|fsdp[ref]:d4'");
      }
      const Allocation& anchor = mode.allocations[a.anchor];
      if (anchor.dims.WorldSize() != a.dims.WorldSize()) {
        return Error(s.pos, s.len,
                     absl::StrCat("colocated allocations must have matching world sizes; '",
                                  ToString(anchor), "' has ", anchor.dims.WorldSize(), ", '",
                                  ToString(a), "' has ", a.dims.WorldSize()),
                     "give both sides of '|' the same d*t*p*c, or use '+' for separate GPUs");
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckNames(const AllocationMode& mode) const {
    const size_t n = mode.allocations.size();
    if (!tree_.plus_positions.empty() && n >= 3) {
      int unnamed = 0;
      int first = -1;
      for (size_t i = 0; i < n; ++i) {
        if (mode.allocations[i].name.empty()) {
          if (unnamed++ == 0) first = static_cast<int>(i);
        }
      }
      if (unnamed > 0) {
        const AllocationSyntax& s = tree_.allocations[first];
        return Error(s.pos, s.len,
                     absl::StrCat("with 3 or more allocations every one needs a name; found ",
                                  unnamed, " unnamed"),
                     "add [name] after each backend, e.g. "
                     "'sglang[rollout]:d2+fsdp[actor]:d4+fsdp[critic]:d4'");
      }
    }
    int anonymous = 0;
    int first_unnamed_anonymous = -1;
    for (size_t i = 0; i < n; ++i) {
      if (tree_.allocations[i].backend) continue;
      ++anonymous;
      if (mode.allocations[i].name.empty() && first_unnamed_anonymous < 0) {
        first_unnamed_anonymous = static_cast<int>(i);
      }
    }
    if (anonymous > 1 && first_unnamed_anonymous >= 0) {
      const AllocationSyntax& s = tree_.allocations[first_unnamed_anonymous];
      return Error(s.pos, s.len,
                   absl::StrCat("found ", anonymous, " training allocations without a backend; "
                                "when there are several, each needs a name"),
                   "write the backends out, e.g. 'fsdp:d4+fsdp[critic]:d4'");
    }
    std::map<std::string, size_t> seen;
    for (size_t i = 0; i < n; ++i) {
      const AllocationSyntax& s = tree_.allocations[i];
      if (s.name.empty()) continue;
      auto [it, inserted] = seen.emplace(s.name, s.name_pos);
      if (!inserted) {
        return Error(s.name_pos, s.name.size(),
                     absl::StrCat("duplicate name '", s.name, "' (first used at byte ", it->second,
                                  ")"),
                     "give each allocation its own name");
      }
    }
    return absl::OkStatus();
  }

  absl::string_view text_;
  const SyntaxTree& tree_;
  const ParseOptions& options_;
};

}  // namespace

absl::StatusOr<AllocationMode> BuildAllocationMode(absl::string_view text, const SyntaxTree& tree,
                                                   const ParseOptions& options) {
  return Builder(text, tree, options).Run();
}

}  // namespace alloc_mode_internal

absl::StatusOr<AllocationMode> ParseAllocationMode(absl::string_view text,
                                                   const ParseOptions& options) {
  MOERL_ASSIGN_OR_RETURN(alloc_mode_internal::SyntaxTree tree,
                         alloc_mode_internal::ParseSyntax(text));
  return alloc_mode_internal::BuildAllocationMode(text, tree, options);
}

absl::StatusOr<Allocation> ParseAllocation(absl::string_view text, const ParseOptions& options) {
  const size_t plus = text.find('+');
  if (plus != absl::string_view::npos) {
    return alloc_mode_internal::CaretError(
        text, plus, 1,
        "one allocation expected here; a '+' chain belongs in allocation_mode, per-engine "
        "fields hold one allocation each",
        "split it, e.g. rollout.backend=sglang:d4 and actor.backend=fsdp:d4");
  }
  MOERL_ASSIGN_OR_RETURN(alloc_mode_internal::SyntaxTree tree,
                         alloc_mode_internal::ParseSyntax(text));
  MOERL_ASSIGN_OR_RETURN(AllocationMode mode,
                         alloc_mode_internal::BuildAllocationMode(text, tree, options));
  if (mode.allocations.size() != 1) {
    const auto& second = tree.allocations[1];
    return alloc_mode_internal::CaretError(
        text, second.pos, second.len,
        absl::StrCat("one allocation expected here, found ", mode.allocations.size(),
                     " in a '|' group"),
        "give each engine its own field and colocate with its scheduling_strategy");
  }
  return mode.allocations[0];
}

}  // namespace moerl
