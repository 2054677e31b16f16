// TrainerSettings: the configuration keys the trainer binary reads (AReaL's
// names, areal-reference.md §b.2, where AReaL has them), bound to one typed
// struct. Torch-free.
//
//   TrainerSettings settings;
//   MOERL_RETURN_IF_ERROR(settings.Load(tree));   // Declare + Read + Validate
//   settings.RunDir();                            // <fileroot>/<experiment>/<trial>
//
// Sections: experiment_name, trial_name, seed (RunConfig), cluster.*
// (ClusterConfig), allocation_mode; actor.* (the keys below; the actor
// section as a whole is shared with other binaries and not owned, but its
// subsections actor.optimizer, actor.mb_spec, actor.reward_norm,
// actor.adv_norm, actor.rejection_sampling and actor.mismatch_correction are
// owned: a misspelt key there is an error naming the closest valid key);
// trainer.* (owned). docs/trainer.md lists every key with its default.
//
// A subsection set to null (actor.reward_norm: null) is off; present as a
// mapping (even {}), it is on with the NormConfig defaults for absent keys.
//
// Plain data; thread-compatible.
#ifndef MOERL_TRAINER_TRAINER_SETTINGS_H_
#define MOERL_TRAINER_TRAINER_SETTINGS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/config/config_tree.h"
#include "common/config/schema.h"
#include "common/config/sections.h"

namespace moerl {

// AReaL's NormConfig (actor.reward_norm, actor.adv_norm).
struct NormSettings {
  std::string mean_level = "batch";  // batch, group, or "" (null: no centring)
  std::string std_level = "batch";   // batch, group, or "" (null: no scaling)
  bool mean_leave1out = false;
  bool std_unbiased = true;
  double eps = 1e-5;
  int64_t group_size = 1;
};

struct OptimizerSettings {
  std::string type = "adam";
  double lr = 1e-3;
  double weight_decay = 0.01;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  std::string lr_scheduler_type = "constant";  // constant, linear, cosine
  double warmup_steps_proportion = 0.001;
  double min_lr_ratio = 0.0;
  double gradient_clipping = 1.0;
  // AReaL's loss-scale keys: accepted, unused (no fp16 loss scaling here).
  double unused_initial_loss_scale = 4294967296.0, unused_min_loss_scale = 1.0;
  int64_t unused_loss_scale_window = 5, unused_hysteresis = 2;
  bool unused_offload = false;
};

struct RejectionSamplingSettings {
  std::string metric = "ratio";  // ratio, kl_k1, kl_k2, kl_k3
  std::string level = "token";   // token, sequence
  std::string agg = "mean";      // mean, sum, max
  std::string action = "mask";   // mask, clamp
  std::optional<double> lower, upper;
};

struct MismatchCorrectionSettings {
  std::string kind;  // "" (off), tis, mis, icepop
  std::string level = "token";
  double cap = 2.0;
  double low = 0.5, high = 2.0;
};

struct TrainerSettings {
  RunConfig run;
  ClusterConfig cluster;
  AllocationModeConfig allocation;

  // actor.*
  std::string actor_path;
  bool init_from_scratch = false;
  std::string dtype = "bfloat16";  // float32, bfloat16
  OptimizerSettings optimizer;
  // actor.megatron.ddp.use_distributed_optimizer (AReaL's default true): on
  // several ranks of a megatron layout, AdamW's state is sharded over the
  // data-parallel ranks (trainer/parallel/distributed_optimizer.h); fsdp
  // layouts always shard it.
  bool use_distributed_optimizer = true;
  int64_t ppo_n_minibatches = 4;
  double eps_clip = 0.2;
  std::optional<double> eps_clip_higher;
  std::optional<double> c_clip;
  double temperature = 1.0;
  double reward_scaling = 1.0, reward_bias = 0.0, reward_clip = 20.0;
  std::optional<NormSettings> reward_norm;
  std::optional<NormSettings> adv_norm;
  double kl_ctl = 0.0;  // AReaL: 0.1; moerl: 0 (kl_ctl > 0 needs ref.path)
  std::string kl_estimator = "k1";
  double discount = 1.0, gae_lambda = 1.0;
  bool mask_no_eos_with_zero = false;
  bool recompute_logprob = false;
  bool use_decoupled_loss = false;
  std::string prox_logp_method = "recompute";
  std::optional<RejectionSamplingSettings> rejection_sampling;
  std::string importance_sampling_level = "token";
  std::optional<int64_t> max_tokens_per_mb;
  int64_t unused_n_mbs = 1, unused_granularity = 1, unused_n_mbs_divisor = 1;
  std::string unused_packing_algorithm = "ffd";
  bool router_replay = false;
  // actor.megatron.use_deterministic_algorithms: torch's deterministic
  // algorithms and, on GPUs, NCCL_ALGO / CUBLAS_WORKSPACE_CONFIG
  // (trainer/deterministic.h).
  bool use_deterministic_algorithms = false;
  std::optional<double> routing_mismatch_threshold;  // null: drop nothing
  MismatchCorrectionSettings mismatch_correction;

  // Top level and other stages' sections (read, not owned).
  std::optional<int64_t> total_train_steps;
  int64_t total_train_epochs = 1;  // accepted (the feeder's epochs bound the data)
  std::string tokenizer_path;
  std::optional<int64_t> saver_freq_steps;
  std::string recover_mode = "disabled";  // auto, on, disabled, off
  std::optional<int64_t> evaluator_freq_steps;
  std::string ref_path;
  std::string valid_dataset_path;
  int64_t train_batch_size = 1;  // train_dataset.batch_size: SFT problems per step

  // trainer.* (owned)
  std::string mode = "grpo";  // grpo, sft
  int64_t keep_weight_versions = 3;
  int64_t keep_checkpoints = 2;  // checkpoints/step-<N> kept (0: all)
  std::string batches_dir;     // default <run>/batches
  bool follow_batches = true;  // wait for the next batch file; false: stop at the end
  double poll_interval_s = 0.2;
  std::string sft_dataset;     // GSM8K-format jsonl (mode=sft)
  int64_t sft_epochs = 1;
  std::string weights_dtype;   // dtype of published weights; "" = actor.dtype
  int64_t max_shard_bytes = int64_t{5} << 30;
  int64_t threads = 0;         // torch intra-op threads; 0: torch's default
  std::string device = "auto"; // auto, cpu, cuda (trainer/device.h)
  int64_t log_every = 1;       // stderr line every N steps
  std::string weights_dir;     // default <run>/weights
  std::string checkpoints_dir; // default <run>/checkpoints
  int64_t eval_n_samples = 4;
  int64_t eval_max_prompts = 32;
  int64_t eval_max_new_tokens = 64;
  double eval_temperature = 0.6;

  void Declare(ConfigSchema* schema);
  absl::Status Validate() const;
  // Declare into a fresh schema, read `tree` (also the null-or-mapping
  // subsections), validate.
  absl::Status Load(const ConfigTree& tree);

  std::string RunDir() const;
  std::string BatchesDir() const;
  std::string WeightsDir() const;
  std::string CheckpointsDir() const;
  std::string StatsPath() const { return RunDir() + "/stats.jsonl"; }
  // recover.mode auto or on.
  bool Recover() const { return recover_mode == "auto" || recover_mode == "on"; }
  // AReaL's should_compute_prox_logp.
  bool ComputeProxLogp() const { return use_decoupled_loss || recompute_logprob; }

 private:
  // Bound targets for the optional subsections; copied into the optionals
  // by Load when the subsection is present.
  NormSettings reward_norm_fields_, adv_norm_fields_;
  RejectionSamplingSettings rejection_fields_;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_TRAINER_SETTINGS_H_
