// Internal to common/alloc_mode: the syntax tree the parser (parser.cc) hands
// to the validator (validate.cc), and the caret error both of them raise.
// Byte offsets into the original string are kept so that every error can
// point at its cause.
//
//   absl::StatusOr<SyntaxTree> tree = ParseSyntax(text);
//   absl::StatusOr<AllocationMode> mode = BuildAllocationMode(text, *tree, options);
//
// Plain data, thread-compatible.
#ifndef MOERL_COMMON_ALLOC_MODE_SYNTAX_H_
#define MOERL_COMMON_ALLOC_MODE_SYNTAX_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/alloc_mode/alloc_mode.h"

namespace moerl {
namespace alloc_mode_internal {

// One `d4`: its letter, value and where it sits.
struct DimToken {
  char letter = 'd';
  int value = 1;
  size_t pos = 0;
  size_t len = 0;
};

// Dims in written order; a repeated letter's last value wins (AReaL's rule).
struct DimList {
  std::vector<DimToken> tokens;
  size_t pos = 0;  // where the list starts
  size_t len = 0;

  // The last token with `letter`, or nullptr.
  const DimToken* Find(char letter) const;
  // Its value, or 1 when absent.
  int Value(char letter) const { return Find(letter) ? Find(letter)->value : 1; }
};

struct AllocationSyntax {
  size_t pos = 0;  // first byte of the allocation
  size_t len = 0;
  std::optional<Backend> backend;  // nullopt: omitted, select automatically
  std::string name;                // empty: no `[name]`
  size_t name_pos = 0;
  bool hybrid = false;
  DimList dims;  // the plain form
  DimList attn;  // the hybrid form
  DimList ffn;
  bool colocated = false;  // preceded by `|`
};

struct SyntaxTree {
  std::vector<AllocationSyntax> allocations;
  std::vector<size_t> plus_positions;  // offsets of the `+` separators
};

// Parses the grammar only (no GPU arithmetic, no naming rules).
absl::StatusOr<SyntaxTree> ParseSyntax(absl::string_view text);

// Applies every validation rule and derives the data model.
absl::StatusOr<AllocationMode> BuildAllocationMode(absl::string_view text,
                                                   const SyntaxTree& tree,
                                                   const ParseOptions& options);

// The InvalidArgument status every rule raises:
//   invalid allocation_mode: <what>
//     <text>
//     <spaces>^~~~
//   fix: <fix>
// Non-printable bytes of `text` are shown as '?', so the caret lines up.
absl::Status CaretError(absl::string_view text, size_t pos, size_t len, absl::string_view what,
                        absl::string_view fix);

}  // namespace alloc_mode_internal
}  // namespace moerl

#endif  // MOERL_COMMON_ALLOC_MODE_SYNTAX_H_
