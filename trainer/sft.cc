#include "trainer/sft.h"

#include <ATen/ops/ones_like.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "dataset/gsm8k.h"

namespace moerl {

std::string SftTargetText(const std::string& answer, const std::string& gold) {
  std::string body = answer;
  const size_t hashes = body.rfind("####");
  if (hashes != std::string::npos) body.resize(hashes);
  absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(body);
  return absl::StrCat(trimmed, trimmed.empty() ? "" : "\n", "The answer is \\boxed{", gold, "}.");
}

absl::StatusOr<SftData> SftData::Load(const std::string& path, const RenderPromptFn& render,
                                      const TokenizeFn& tokenize, int64_t eos_id) {
  MOERL_ASSIGN_OR_RETURN(Gsm8kFile file, LoadGsm8kFile(path));
  std::vector<TrainSequence> seqs;
  for (const Gsm8kRow& row : file.rows) {
    TrainSequence s;
    for (int32_t id : tokenize(render(Gsm8kUserContent(row.question)))) s.tokens.push_back(id);
    s.prompt_len = s.Length();
    for (int32_t id : tokenize(SftTargetText(row.answer, row.gold_answer))) s.tokens.push_back(id);
    if (eos_id >= 0) s.tokens.push_back(eos_id);
    if (s.prompt_len == 0 || s.OutputLen() == 0) continue;
    seqs.push_back(std::move(s));
  }
  if (seqs.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " holds no usable problem"));
  return SftData(std::move(seqs));
}

std::vector<TrainSequence> SftData::Take(int64_t n, int64_t epoch, int64_t index, uint64_t seed) const {
  std::vector<int64_t> order(seqs_.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(epoch));
  for (int64_t i = size() - 1; i > 0; --i) {
    std::swap(order[i], order[static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1))]);
  }
  std::vector<TrainSequence> out;
  for (int64_t i = index; i < index + n && i < size(); ++i) out.push_back(seqs_[order[i]]);
  return out;
}

absl::Status SftObjective::Prepare(Qwen3Model&, const std::vector<TrainSequence>& seqs, StatsRecorder* stats) {
  stats->Denominator("ppo_actor/n_seqs", static_cast<double>(seqs.size()));
  double tokens = 0;
  for (const TrainSequence& s : seqs) tokens += static_cast<double>(s.OutputLen());
  stats->Denominator("ppo_actor/n_valid_tokens", tokens);
  return absl::OkStatus();
}

int64_t SftObjective::LossTokens(const std::vector<TrainSequence>& seqs, const IndexList& indices) const {
  int64_t n = 0;
  for (int64_t i : indices) n += seqs[i].OutputLen();
  return n;
}

at::Tensor SftObjective::MicroBatchLoss(const std::vector<TrainSequence>&, const IndexList&,
                                        const PolicyOutput& out, double denominator, StatsRecorder* stats) {
  RecordMaskedStat(stats, "sft/nll", -out.logp_n, at::ones_like(out.logp_n));
  return -out.logp_n.sum() / denominator;
}

}  // namespace moerl
