#include "common/config/known_keys.h"

namespace moerl {

std::vector<std::string> KnownTopLevelKeys() {
  return {
      // Scalars (AReaL names).
      "experiment_name", "trial_name", "seed", "total_train_epochs", "total_train_steps",
      "total_train_n_seqs", "tokenizer_path", "enable_offload", "allocation_mode",
      "async_training",
      // Sections (AReaL names).
      "cluster", "scheduler", "rollout", "gconfig", "eval_gconfig", "actor", "ref", "critic",
      "teacher", "sglang", "vllm", "train_dataset", "valid_dataset", "saver", "recover",
      "evaluator", "stats_logger", "launcher",
      // moerl's own sections.
      "dataset", "reward", "trainer", "pipeline", "ring", "planner", "server",
  };
}

}  // namespace moerl
