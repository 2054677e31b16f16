#include "trainer/trainer_settings.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/config/names.h"
#include "common/hf_cache.h"
#include "common/status.h"

namespace moerl {
namespace {

void DeclareNorm(ConfigSchema* schema, const std::string& prefix, NormSettings* n) {
  schema->OwnSection(prefix);
  schema->Choice(prefix + ".mean_level", &n->mean_level, {"batch", "group", ""},
                 "centring: batch, group, or null");
  schema->Choice(prefix + ".std_level", &n->std_level, {"batch", "group", ""},
                 "scaling: batch, group, or null");
  schema->Bool(prefix + ".mean_leave1out", &n->mean_leave1out, "leave-one-out mean");
  schema->Bool(prefix + ".std_unbiased", &n->std_unbiased, "n-1 denominator");
  schema->Double(prefix + ".eps", &n->eps, "added to the std");
  schema->Int(prefix + ".group_size", &n->group_size, "sequences per group (group level)", 1);
}

absl::Status CheckNorm(const std::optional<NormSettings>& n, const std::string& prefix) {
  if (!n) return absl::OkStatus();
  if (!(n->eps >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, ".eps must be >= 0, got ", n->eps));
  }
  return absl::OkStatus();
}

// A subsection is on when its key holds a mapping (null or absent: off).
bool IsMapping(const ConfigTree& tree, const std::string& path) {
  const YAML::Node node = tree.Find(path);
  return node.IsDefined() && node.IsMap();
}

absl::Status Positive(double value, const std::string& key) {
  if (value > 0 && std::isfinite(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(key, " must be > 0, got ", value));
}

}  // namespace

void TrainerSettings::Declare(ConfigSchema* schema) {
  run.Declare(schema);
  cluster.Declare(schema);
  allocation.Declare(schema);

  schema->String("actor.path", &actor_path,
                 "HF checkpoint folder (config.json + safetensors); with init_from_scratch only "
                 "its config.json is read");
  schema->Bool("actor.init_from_scratch", &init_from_scratch,
               "build from <actor.path>/config.json with seeded random weights");
  schema->Choice("actor.dtype", &dtype, {"float32", "bfloat16"}, "training dtype");

  OptimizerSettings& o = optimizer;
  schema->OwnSection("actor.optimizer");
  schema->Choice("actor.optimizer.type", &o.type, {"adam"}, "AdamW (torch.optim.AdamW)");
  schema->Double("actor.optimizer.lr", &o.lr, "peak learning rate");
  schema->Double("actor.optimizer.weight_decay", &o.weight_decay, "decoupled weight decay");
  schema->Double("actor.optimizer.beta1", &o.beta1, "Adam beta1");
  schema->Double("actor.optimizer.beta2", &o.beta2, "Adam beta2");
  schema->Double("actor.optimizer.eps", &o.eps, "Adam eps");
  schema->Choice("actor.optimizer.lr_scheduler_type", &o.lr_scheduler_type,
                 {"constant", "linear", "cosine"}, "schedule after warmup");
  schema->Double("actor.optimizer.warmup_steps_proportion", &o.warmup_steps_proportion,
                 "linear warmup over this fraction of total_train_steps");
  schema->Double("actor.optimizer.min_lr_ratio", &o.min_lr_ratio,
                 "final lr / peak lr (linear, cosine)");
  schema->Double("actor.optimizer.gradient_clipping", &o.gradient_clipping,
                 "clip the global gradient norm to this (<= 0: off)");
  schema->Bool("actor.megatron.ddp.use_distributed_optimizer", &use_distributed_optimizer,
               "shard AdamW's state over the data-parallel ranks (megatron layouts on several ranks)");
  schema->Double("actor.optimizer.initial_loss_scale", &o.unused_initial_loss_scale, "accepted, unused");
  schema->Double("actor.optimizer.min_loss_scale", &o.unused_min_loss_scale, "accepted, unused");
  schema->Int("actor.optimizer.loss_scale_window", &o.unused_loss_scale_window, "accepted, unused");
  schema->Int("actor.optimizer.hysteresis", &o.unused_hysteresis, "accepted, unused");
  schema->Bool("actor.optimizer.offload", &o.unused_offload, "accepted, unused");

  schema->Bool("actor.megatron.use_deterministic_algorithms", &use_deterministic_algorithms,
               "deterministic kernels and fixed reduction orders (trainer/deterministic.h)");
  schema->Int("actor.ppo_n_minibatches", &ppo_n_minibatches, "optimizer steps per training step", 1);
  schema->Double("actor.eps_clip", &eps_clip, "PPO clip");
  schema->OptionalDouble("actor.eps_clip_higher", &eps_clip_higher, "upper clip (DAPO); null: eps_clip");
  schema->OptionalDouble("actor.c_clip", &c_clip, "dual clip (> 1); null: off");
  schema->Double("actor.temperature", &temperature, "logits / temperature for log-probs");
  schema->Double("actor.reward_scaling", &reward_scaling, "r' = (r + bias) * scaling");
  schema->Double("actor.reward_bias", &reward_bias, "r' = (r + bias) * scaling");
  schema->Double("actor.reward_clip", &reward_clip, "clip |r'| to this");
  DeclareNorm(schema, "actor.reward_norm", &reward_norm_fields_);
  DeclareNorm(schema, "actor.adv_norm", &adv_norm_fields_);
  schema->Double("actor.kl_ctl", &kl_ctl, "KL reward penalty (needs ref.path when > 0)");
  schema->Choice("actor.kl_estimator", &kl_estimator, {"k1", "k2", "k3"}, "KL estimator");
  schema->Double("actor.discount", &discount, "GAE gamma");
  schema->Double("actor.gae_lambda", &gae_lambda, "GAE lambda");
  schema->Bool("actor.mask_no_eos_with_zero", &mask_no_eos_with_zero,
               "zero reward for sequences without EOS");
  schema->Bool("actor.recompute_logprob", &recompute_logprob, "recompute log-probs before the update");
  schema->Bool("actor.use_decoupled_loss", &use_decoupled_loss,
               "decoupled PPO: proximal = recomputed, behaviour = inference");
  schema->Choice("actor.prox_logp_method", &prox_logp_method, {"recompute"},
                 "how the proximal log-probs are obtained");
  RejectionSamplingSettings& r = rejection_fields_;
  schema->OwnSection("actor.rejection_sampling");
  schema->Choice("actor.rejection_sampling.metric", &r.metric, {"ratio", "kl_k1", "kl_k2", "kl_k3"},
                 "what is bounded");
  schema->Choice("actor.rejection_sampling.level", &r.level, {"token", "sequence"}, "granularity");
  schema->Choice("actor.rejection_sampling.agg", &r.agg, {"mean", "sum", "max"},
                 "sequence-level aggregation");
  schema->Choice("actor.rejection_sampling.action", &r.action, {"mask", "clamp"}, "out of bounds");
  schema->OptionalDouble("actor.rejection_sampling.lower", &r.lower, "lower bound or null");
  schema->OptionalDouble("actor.rejection_sampling.upper", &r.upper, "upper bound or null");
  schema->Choice("actor.importance_sampling_level", &importance_sampling_level, {"token", "sequence"},
                 "PPO ratio per token or per sequence (GSPO)");
  schema->OwnSection("actor.mb_spec");
  schema->OptionalInt("actor.mb_spec.max_tokens_per_mb", &max_tokens_per_mb,
                      "micro-batch token cap (FFD packing); null: one micro-batch", 1);
  schema->Int("actor.mb_spec.n_mbs", &unused_n_mbs, "accepted, unused", 1);
  schema->Int("actor.mb_spec.granularity", &unused_granularity, "accepted, unused", 1);
  schema->Int("actor.mb_spec.n_mbs_divisor", &unused_n_mbs_divisor, "accepted, unused", 1);
  schema->Choice("actor.mb_spec.packing_algorithm", &unused_packing_algorithm, {"ffd", "kk"},
                 "accepted; FFD is used");
  schema->Bool("actor.router_replay", &router_replay,
               "train with the experts the inference engine chose (Trajectory.routed_experts)");
  schema->OptionalDouble("actor.routing_mismatch_threshold", &routing_mismatch_threshold,
                         "drop from the loss completion tokens whose routing mismatch fraction (trainer's routers "
                         "vs Trajectory.routed_experts) exceeds this, in [0, 1]; null: off");
  MismatchCorrectionSettings& m = mismatch_correction;
  schema->OwnSection("actor.mismatch_correction");
  schema->Choice("actor.mismatch_correction.kind", &m.kind, {"", "tis", "mis", "icepop"},
                 "train/inference mismatch correction; null: off");
  schema->Choice("actor.mismatch_correction.level", &m.level, {"token", "sequence"}, "granularity");
  schema->Double("actor.mismatch_correction.cap", &m.cap, "TIS/MIS cap");
  schema->Double("actor.mismatch_correction.low", &m.low, "icepop lower bound");
  schema->Double("actor.mismatch_correction.high", &m.high, "icepop upper bound");

  schema->OptionalInt("total_train_steps", &total_train_steps, "stop after this many steps", 1);
  schema->Int("total_train_epochs", &total_train_epochs, "accepted (the feeder's epochs)", 1);
  schema->String("tokenizer_path", &tokenizer_path,
                 "tokenizer folder copied beside published weights (default actor.path)");
  schema->OptionalInt("saver.freq_steps", &saver_freq_steps, "checkpoint every N steps; null: never", 1);
  schema->Choice("recover.mode", &recover_mode, {"auto", "on", "disabled", "off"},
                 "auto/on: resume from the last complete checkpoint");
  schema->OptionalInt("evaluator.freq_steps", &evaluator_freq_steps, "evaluate every N steps", 1);
  schema->String("ref.path", &ref_path, "reference model (kl_ctl > 0)");
  schema->String("valid_dataset.path", &valid_dataset_path, "held-out GSM8K jsonl for evaluation");
  schema->Int("train_dataset.batch_size", &train_batch_size, "SFT: problems per step", 1);

  schema->OwnSection("trainer");
  schema->Choice("trainer.mode", &mode, {"grpo", "sft"}, "GRPO on batches/, or SFT on a jsonl");
  schema->Int("trainer.keep_weight_versions", &keep_weight_versions,
              "weights/v<N> folders kept (older unpinned ones removed)", 1);
  schema->Int("trainer.keep_checkpoints", &keep_checkpoints,
              "checkpoints/step-<N> folders kept, the newest complete ones (0: keep all)", 0);
  schema->String("trainer.batches_dir", &batches_dir, "default <run>/batches");
  schema->Bool("trainer.follow_batches", &follow_batches,
               "wait for the next batch file (false: stop at the first missing one)");
  schema->Double("trainer.poll_interval_s", &poll_interval_s, "wait between looks for a batch file");
  schema->String("trainer.sft_dataset", &sft_dataset, "GSM8K-format jsonl (trainer.mode=sft)");
  schema->Int("trainer.sft_epochs", &sft_epochs, "passes over trainer.sft_dataset", 1);
  schema->Choice("trainer.weights_dtype", &weights_dtype, {"", "float32", "bfloat16"},
                 "dtype of published weights; null: actor.dtype");
  schema->Int("trainer.max_shard_bytes", &max_shard_bytes, "safetensors shard size", 1);
  schema->Int("trainer.threads", &threads, "torch intra-op threads; 0: default", 0);
  schema->Choice("trainer.device", &device, {"auto", "cpu", "cuda"},
                 "where the model, optimizer state and batches live: cuda:LOCAL_RANK, the host, or auto "
                 "(cuda when the build has CUDA and a GPU is visible)");
  schema->Int("trainer.log_every", &log_every, "one stderr line every N steps", 1);
  schema->String("trainer.weights_dir", &weights_dir, "default <run>/weights");
  schema->String("trainer.checkpoints_dir", &checkpoints_dir, "default <run>/checkpoints");
  schema->Int("trainer.eval_n_samples", &eval_n_samples, "samples per eval prompt", 1);
  schema->Int("trainer.eval_max_prompts", &eval_max_prompts, "eval prompts (first N of the split)", 1);
  schema->Int("trainer.eval_max_new_tokens", &eval_max_new_tokens, "eval completion cap", 1);
  schema->Double("trainer.eval_temperature", &eval_temperature, "eval sampling temperature");
}

absl::Status TrainerSettings::Validate() const {
  MOERL_RETURN_IF_ERROR(run.Validate());
  MOERL_RETURN_IF_ERROR(cluster.Validate());
  if (!allocation.allocation_mode.empty()) MOERL_RETURN_IF_ERROR(allocation.Validate());
  if (actor_path.empty()) {
    return absl::InvalidArgumentError(
        "actor.path is required: an HF checkpoint folder, or with actor.init_from_scratch=true a "
        "folder holding config.json");
  }
  MOERL_RETURN_IF_ERROR(Positive(optimizer.lr, "actor.optimizer.lr"));
  MOERL_RETURN_IF_ERROR(Positive(optimizer.eps, "actor.optimizer.eps"));
  if (!(optimizer.beta1 >= 0 && optimizer.beta1 < 1) || !(optimizer.beta2 >= 0 && optimizer.beta2 < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "actor.optimizer.beta1 and beta2 must be in [0, 1), got ", optimizer.beta1, " and ",
        optimizer.beta2));
  }
  if (!(optimizer.weight_decay >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("actor.optimizer.weight_decay must be >= 0, got ", optimizer.weight_decay));
  }
  if (!(optimizer.warmup_steps_proportion >= 0 && optimizer.warmup_steps_proportion <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "actor.optimizer.warmup_steps_proportion must be in [0, 1], got ",
        optimizer.warmup_steps_proportion));
  }
  if (!(optimizer.min_lr_ratio >= 0 && optimizer.min_lr_ratio <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "actor.optimizer.min_lr_ratio must be in [0, 1], got ", optimizer.min_lr_ratio));
  }
  if (optimizer.lr_scheduler_type != "constant" && !total_train_steps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "actor.optimizer.lr_scheduler_type=", optimizer.lr_scheduler_type,
        " needs total_train_steps (the schedule's length); got total_train_steps=null"));
  }
  MOERL_RETURN_IF_ERROR(Positive(eps_clip, "actor.eps_clip"));
  if (eps_clip_higher) MOERL_RETURN_IF_ERROR(Positive(*eps_clip_higher, "actor.eps_clip_higher"));
  if (c_clip && !(*c_clip > 1)) {
    return absl::InvalidArgumentError(absl::StrCat("actor.c_clip must be > 1, got ", *c_clip));
  }
  if (routing_mismatch_threshold && !(*routing_mismatch_threshold >= 0 && *routing_mismatch_threshold <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "actor.routing_mismatch_threshold must be in [0, 1] (a fraction of expert slots) or null, got ",
        *routing_mismatch_threshold));
  }
  MOERL_RETURN_IF_ERROR(Positive(temperature, "actor.temperature"));
  MOERL_RETURN_IF_ERROR(Positive(reward_clip, "actor.reward_clip"));
  MOERL_RETURN_IF_ERROR(CheckNorm(reward_norm, "actor.reward_norm"));
  MOERL_RETURN_IF_ERROR(CheckNorm(adv_norm, "actor.adv_norm"));
  if (kl_ctl != 0 && ref_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "actor.kl_ctl=", kl_ctl, " needs a reference model: set ref.path, or actor.kl_ctl=0"));
  }
  if (rejection_sampling && !rejection_sampling->lower && !rejection_sampling->upper) {
    return absl::InvalidArgumentError(
        "actor.rejection_sampling needs lower or upper (or set actor.rejection_sampling=null)");
  }
  if (mode == "sft" && sft_dataset.empty()) {
    return absl::InvalidArgumentError("trainer.mode=sft needs trainer.sft_dataset (a GSM8K jsonl)");
  }
  MOERL_RETURN_IF_ERROR(Positive(poll_interval_s, "trainer.poll_interval_s"));
  if (evaluator_freq_steps && valid_dataset_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "evaluator.freq_steps=", *evaluator_freq_steps,
        " needs valid_dataset.path (a held-out GSM8K jsonl), or evaluator.freq_steps=null"));
  }
  return absl::OkStatus();
}

absl::Status TrainerSettings::Load(const ConfigTree& tree) {
  ConfigSchema schema;
  Declare(&schema);
  MOERL_RETURN_IF_ERROR(schema.Read(tree));
  if (IsMapping(tree, "actor.reward_norm")) reward_norm = reward_norm_fields_;
  if (IsMapping(tree, "actor.adv_norm")) adv_norm = adv_norm_fields_;
  if (IsMapping(tree, "actor.rejection_sampling")) rejection_sampling = rejection_fields_;
  // Hugging Face model ids name their snapshot in the local cache.
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("actor.path", &actor_path));
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("ref.path", &ref_path));
  MOERL_RETURN_IF_ERROR(ResolveModelPathKey("tokenizer_path", &tokenizer_path));
  return Validate();
}

std::string TrainerSettings::RunDir() const {
  return RunDirectory(cluster.fileroot, run.experiment_name, run.trial_name);
}
std::string TrainerSettings::BatchesDir() const {
  return batches_dir.empty() ? RunDir() + "/batches" : batches_dir;
}
std::string TrainerSettings::WeightsDir() const {
  return weights_dir.empty() ? RunDir() + "/weights" : weights_dir;
}
std::string TrainerSettings::CheckpointsDir() const {
  return checkpoints_dir.empty() ? RunDir() + "/checkpoints" : checkpoints_dir;
}

}  // namespace moerl
