// Supervised fine-tuning on GSM8K-format problems (trainer.mode=sft), used to
// warm-start the demo model: the prompt is the GRPO prompt (AReaL's user
// content in the chat template), the target a worked solution ending in the
// form the reward accepts, and the loss the mean negative log-likelihood of
// the target tokens only (a token mean over each minibatch, like GRPO).
//
//   target = <solution lines without the "#### g" line>
//            "\nThe answer is \boxed{g}." <eos>
//
//   MOERL_ASSIGN_OR_RETURN(auto data, SftData::Load(path, render, tokenize, eos_id));
//   std::vector<TrainSequence> batch = data.Take(/*n=*/8, epoch, index, seed);
//   SftObjective objective(/*temperature=*/1.0);
//
// Thread-compatible.
#ifndef MOERL_TRAINER_SFT_H_
#define MOERL_TRAINER_SFT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dataset/prompt.h"
#include "trainer/train_step.h"

namespace moerl {

// The target text for a GSM8K answer and its gold value.
std::string SftTargetText(const std::string& answer, const std::string& gold);

class SftData {
 public:
  static absl::StatusOr<SftData> Load(const std::string& path, const RenderPromptFn& render,
                                      const TokenizeFn& tokenize, int64_t eos_id);
  static SftData FromSequences(std::vector<TrainSequence> seqs) { return SftData(std::move(seqs)); }

  // Sequences [index, index + n) of epoch `epoch`'s seeded order
  // (index + n <= size()).
  std::vector<TrainSequence> Take(int64_t n, int64_t epoch, int64_t index, uint64_t seed) const;
  int64_t size() const { return static_cast<int64_t>(seqs_.size()); }

 private:
  explicit SftData(std::vector<TrainSequence> seqs) : seqs_(std::move(seqs)) {}
  std::vector<TrainSequence> seqs_;
};

class SftObjective : public Objective {
 public:
  explicit SftObjective(double temperature) : temperature_(temperature) {}
  absl::Status Prepare(Qwen3Model&, const std::vector<TrainSequence>& seqs, StatsRecorder* stats) override;
  int64_t LossTokens(const std::vector<TrainSequence>& seqs, const IndexList& indices) const override;
  at::Tensor MicroBatchLoss(const std::vector<TrainSequence>& seqs, const IndexList& micro,
                            const PolicyOutput& out, double denominator, StatsRecorder* stats) override;
  PolicyForwardOptions ForwardOptions() const override {
    PolicyForwardOptions o;
    o.temperature = temperature_;
    return o;
  }

 private:
  double temperature_;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_SFT_H_
