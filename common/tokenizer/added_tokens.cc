#include "common/tokenizer/added_tokens.h"

#include <algorithm>

namespace moerl {
namespace tokenizer {

void AddedTokenMatcher::Add(absl::string_view content, int32_t id) {
  if (content.empty()) return;
  auto& group = by_first_byte_[static_cast<uint8_t>(content[0])];
  for (const auto& [existing, unused_id] : group) {
    if (existing == content) return;
  }
  group.emplace_back(std::string(content), id);
  std::stable_sort(group.begin(), group.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  ++count_;
}

bool AddedTokenMatcher::FindNext(absl::string_view text, size_t from, AddedTokenMatch* match) const {
  if (count_ == 0) return false;
  for (size_t i = from; i < text.size(); ++i) {
    const auto& group = by_first_byte_[static_cast<uint8_t>(text[i])];
    for (const auto& [content, id] : group) {
      if (text.size() - i >= content.size() && text.compare(i, content.size(), content) == 0) {
        *match = {i, content.size(), id};
        return true;
      }
    }
  }
  return false;
}

}  // namespace tokenizer
}  // namespace moerl
