#include "trainer/trainer_run.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/batch_source.h"
#include "common/config/cli.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/weights_dir.h"
#include "dataset/feeder_run.h"
#include "trainer/checkpoint.h"
#include "trainer/deterministic.h"
#include "trainer/device.h"
#include "trainer/evaluator.h"
#include "trainer/full_model.h"
#include "trainer/grpo_objective.h"
#include "trainer/model/config.h"
#include "trainer/model/hf_weights.h"
#include "trainer/optimizer.h"
#include "trainer/optimizer_state_io.h"
#include "trainer/parallel/distributed_optimizer.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/process_groups.h"
#include "trainer/sft.h"
#include "trainer/stats_log.h"
#include "trainer/tensorboard_writer.h"
#include "trainer/train_step.h"
#include "trainer/weight_publisher.h"

namespace moerl {
namespace {

double Seconds(absl::Time since) { return absl::ToDoubleSeconds(absl::Now() - since); }

// Bytes this rank has sent over all its groups (process_groups.h counters).
double BytesSent(const ParallelState& parallel) {
  int64_t sent = 0;
  for (const auto& [kind, counts] : parallel.CommBytes()) sent += counts.sent();
  return static_cast<double>(sent);
}

// The model of this rank: sharded by ParallelizeQwen3 before any weight is
// read, so that a rank under expert parallelism loads only its experts.
// Built and loaded on the host, then moved to `device` in the training dtype.
absl::StatusOr<std::shared_ptr<Qwen3Model>> BuildModel(const TrainerSettings& s, const ModelConfig& config,
                                                       const ParallelState& parallel, const at::Device& device) {
  auto model = std::make_shared<Qwen3Model>(config);
  MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, parallel));
  if (s.init_from_scratch) {
    model->InitializeWeights(static_cast<uint64_t>(s.run.seed));
  } else {
    MOERL_RETURN_IF_ERROR(LoadHfWeights(s.actor_path, model.get()));
  }
  if (s.dtype == "bfloat16") model->to(at::kBFloat16);
  if (!device.is_cpu()) model->to(device);
  return model;
}

// Sum of `local` over every rank of the trainer (tp-dp-cp, then pp: all of
// them), the same value on each: how the ranks agree on rank 0's decisions
// and learn of each other's failures.
double SumOverRanks(const ParallelState& parallel, double local) {
  return SumOverGroup(parallel, RankGroupKind::kPipeline,
                      SumOverGroup(parallel, RankGroupKind::kTensorDataContext, local));
}

// Rank 0 writes each version's files on a thread of its own while the next
// step trains: writing and fsyncing the weights and the probe's forward stay
// off the step. Start() takes a model that nothing else changes or runs
// meanwhile; Finish(), called by every rank, joins the writer and agrees on
// its outcome (a collective). The trainer finishes a version before the next
// one, before an evaluation, before a checkpoint (so a checkpoint of step N
// implies v<N> is published). At the end of the run, which ranks may reach
// at different times (a stop request), Join() waits for the writer alone;
// so does destruction (an early error return).
class BackgroundPublisher {
 public:
  BackgroundPublisher(WeightPublisher* publisher, const ParallelState* parallel, bool writer)
      : publisher_(publisher), parallel_(parallel), writer_(writer) {}
  BackgroundPublisher(const BackgroundPublisher&) = delete;
  BackgroundPublisher& operator=(const BackgroundPublisher&) = delete;
  ~BackgroundPublisher() {
    if (thread_.joinable()) thread_.join();
  }

  // Every rank calls it, with the same version; rank 0 starts writing.
  void Start(std::shared_ptr<Qwen3Model> model, int64_t version) {
    version_ = version;
    if (!writer_) return;
    thread_ = std::thread([this, model = std::move(model), version] {
      try {
        status_ = publisher_->Publish(*model, version);
      } catch (const std::exception& e) {  // torch's errors, which would end the process here
        status_ = absl::InternalError(absl::StrCat("publishing weights v", version, ": ", e.what()));
      }
    });
  }

  // This rank's writer's outcome (OK on every rank but 0); no collective.
  absl::Status Join() {
    if (thread_.joinable()) thread_.join();
    return std::exchange(status_, absl::OkStatus());
  }

  absl::Status Finish() {
    const absl::Status status = Join();
    if (SumOverRanks(*parallel_, status.ok() ? 0.0 : 1.0) > 0 && status.ok()) {
      return absl::AbortedError(absl::StrCat("rank 0 could not publish weights v", version_));
    }
    return status;
  }

 private:
  WeightPublisher* const publisher_;
  const ParallelState* const parallel_;
  const bool writer_;
  std::thread thread_;
  absl::Status status_;  // the writer's; read after join
  int64_t version_ = -1;
};

// Whether the ranks' optimizer states differ (each holds other experts or
// other tensor slices): then a checkpoint of the per-rank format (before
// optimizer/) has a file per rank.
bool RanksHoldDistinctState(const ParallelState& parallel) {
  return parallel.dims().ep > 1 || parallel.dims().tp > 1;
}

// AdamW over this rank's parameters, or with its state sharded over the
// data-parallel ranks: fsdp layouts always, megatron ones when
// actor.megatron.ddp.use_distributed_optimizer (AReaL's default) is set.
std::unique_ptr<TrainOptimizer> MakeOptimizer(const TrainerSettings& s, Qwen3Model& model,
                                              const ParallelState& parallel, LrSchedule schedule) {
  bool sharded = s.use_distributed_optimizer;
  if (absl::StatusOr<AllocationMode> mode = s.allocation.Parse(); mode.ok()) {
    for (int i : mode->TrainingIndices()) sharded |= mode->allocations[i].backend == Backend::kFsdp;
  }
  if (parallel.world_size() > 1 && sharded) {
    return std::make_unique<DistributedOptimizer>(model, parallel, s.optimizer, std::move(schedule));
  }
  return std::make_unique<TrainOptimizer>(model.parameters(), s.optimizer, std::move(schedule));
}

std::string RankOptimizerFile(int rank) { return absl::StrCat("optimizer-rank-", rank, ".pt"); }

// checkpoints/step-<N>: every rank takes part in gathering the optimizer
// state into whole tensors (as `full`, this step's FullModel, gathers the
// weights); rank 0 writes the folder.
absl::Status SaveCheckpointOnRanks(const TrainerSettings& s, Qwen3Model& model, Qwen3Model& full,
                                   const TrainOptimizer& optimizer, const TrainerState& state,
                                   const ParallelState& parallel) {
  const GatheredOptimizerState moments = GatherOptimizerState(model, optimizer, parallel);
  if (parallel.rank() != 0) return absl::OkStatus();
  const std::string dir = s.CheckpointsDir();
  MOERL_RETURN_IF_ERROR(SaveTrainerCheckpoint(dir, full, moments, state));
  MOERL_ASSIGN_OR_RETURN(std::vector<int64_t> removed, PruneCheckpoints(dir, s.keep_checkpoints));
  if (!removed.empty()) {
    MOERL_LOG(INFO) << "removed checkpoints step-" << absl::StrJoin(removed, ", step-") << " (trainer.keep_checkpoints="
                    << s.keep_checkpoints << ")";
  }
  return absl::OkStatus();
}

// Where each step's sequences come from.
class StepData {
 public:
  virtual ~StepData() = default;
  // Fills *seqs: true; false at the end of the data or on a stop.
  virtual absl::StatusOr<bool> Next(const std::function<bool()>& should_stop, TrainerState* state,
                                    std::vector<TrainSequence>* seqs) = 0;
};

class BatchFileData : public StepData {
 public:
  BatchFileData(const TrainerSettings& s, int64_t start, int64_t vocab)
      : source_(Options(s, start, vocab)) {}
  absl::StatusOr<bool> Next(const std::function<bool()>& should_stop, TrainerState* state,
                            std::vector<TrainSequence>* seqs) override {
    proto::TrajectoryBatch batch;
    MOERL_ASSIGN_OR_RETURN(bool got, source_.Next(should_stop, &batch));
    if (!got) return false;
    *seqs = FromTrajectoryBatch(batch);
    state->data_index = source_.next_index();
    return true;
  }

 private:
  static BatchSourceOptions Options(const TrainerSettings& s, int64_t start, int64_t vocab) {
    BatchSourceOptions o;
    o.dir = s.BatchesDir();
    o.start_index = start;
    o.follow = s.follow_batches;
    o.poll_interval = absl::Seconds(s.poll_interval_s);
    o.vocab_size = vocab;
    return o;
  }
  BatchSource source_;
};

class SftStepData : public StepData {
 public:
  SftStepData(SftData data, int64_t batch_size, int64_t epochs, uint64_t seed)
      : data_(std::move(data)), batch_size_(batch_size), epochs_(epochs), seed_(seed) {}
  absl::StatusOr<bool> Next(const std::function<bool()>&, TrainerState* state,
                            std::vector<TrainSequence>* seqs) override {
    // drop_last within each epoch, as the GRPO data loader.
    const int64_t n = std::min(batch_size_, data_.size());
    if (state->data_index + n > data_.size()) {
      ++state->data_epoch;
      state->data_index = 0;
    }
    if (state->data_epoch >= epochs_) return false;
    *seqs = data_.Take(n, state->data_epoch, state->data_index, seed_);
    state->data_index += n;
    return true;
  }

 private:
  SftData data_;
  int64_t batch_size_, epochs_;
  uint64_t seed_;
};

// tokenizer_path, else actor.path (unless built from scratch), else the small
// tokenizer shipped with the binary.
absl::StatusOr<Tokenizer> LoadTrainerTokenizer(const TrainerSettings& s) {
  return LoadPromptTokenizer(s.tokenizer_path.empty() && !s.init_from_scratch ? s.actor_path : s.tokenizer_path, "");
}

absl::StatusOr<std::unique_ptr<StepData>> MakeStepData(const TrainerSettings& s, const TrainerState& state,
                                                        int64_t vocab) {
  if (s.mode == "grpo") return std::unique_ptr<StepData>(new BatchFileData(s, state.data_index, vocab));
  MOERL_ASSIGN_OR_RETURN(Tokenizer tokenizer, LoadTrainerTokenizer(s));
  RenderPromptFn render = [&](absl::string_view user) { return tokenizer.RenderChatPrompt(user); };
  TokenizeFn tokenize = [&](absl::string_view text) { return tokenizer.Encode(text); };
  MOERL_ASSIGN_OR_RETURN(SftData data, SftData::Load(s.sft_dataset, render, tokenize, tokenizer.eos_id()));
  MOERL_LOG(INFO) << "SFT on " << data.size() << " problems from " << s.sft_dataset;
  return std::unique_ptr<StepData>(
      new SftStepData(std::move(data), s.train_batch_size, s.sft_epochs, static_cast<uint64_t>(s.run.seed)));
}

absl::Status RunTrainerSteps(const TrainerSettings& s, const ParallelState& parallel, bool nccl,
                             const std::function<bool()>& should_stop, TrainerReport* report);

// RunTrainer on `parallel`, whose groups carry device tensors over NCCL
// when `nccl`.
absl::Status RunTrainerOn(const TrainerSettings& s, const ParallelState& parallel, bool nccl,
                          const std::function<bool()>& should_stop, TrainerReport* report);

// The layouts the trainer runs, with these settings.
absl::Status CheckTrainerLayout(const TrainerSettings& s, const ParallelDims& dims) {
  MOERL_RETURN_IF_ERROR(CheckLayoutImplemented(dims));
  if (s.routing_mismatch_threshold && (dims.tp > 1 || dims.cp > 1 || dims.pp > 1)) {
    return absl::UnimplementedError(absl::StrCat(
        "actor.routing_mismatch_threshold is not supported with tensor, context or pipeline parallelism (",
        DebugString(dims), "): the routes are compared on whole sequences and every layer; use a layout with "
        "tp=1, cp=1 and pp=1"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainerSettings> LoadTrainerSettings(const std::vector<std::string>& args) {
  MOERL_ASSIGN_OR_RETURN(CommandLine cli, ParseCommandLine(args, {}));
  MOERL_ASSIGN_OR_RETURN(ConfigTree tree, LoadConfig(cli));
  TrainerSettings settings;
  MOERL_RETURN_IF_ERROR(settings.Load(tree));
  return settings;
}

absl::Status RunTrainer(const TrainerSettings& s, const std::function<bool()>& should_stop,
                        TrainerReport* report) {
  MOERL_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromFile(s.actor_path + "/config.json"));
  if (s.use_deterministic_algorithms) {
    // Before any process group: NCCL and cuBLAS read these when they start.
    MOERL_RETURN_IF_ERROR(SetDeterministicEnvironment(ProcessEnvironment(), ProcessEnvironmentSetter()));
    EnableDeterministicAlgorithms();
  }
  if (s.allocation.allocation_mode.empty()) {
    return RunTrainerOn(s, ParallelState::SingleProcess(), /*nccl=*/false, should_stop, report);
  }
  MOERL_ASSIGN_OR_RETURN(AllocationMode mode, s.allocation.Parse());
  // Layouts the trainer cannot run yet fail here, before meeting the others.
  MOERL_ASSIGN_OR_RETURN(ParallelDims dims, TrainingDims(mode));
  MOERL_RETURN_IF_ERROR(CheckTrainerLayout(s, dims));
  // On GPUs device tensors (activations, gradients) go over NCCL; host
  // tensors (token counts, router statistics) over Gloo.
  MOERL_ASSIGN_OR_RETURN(c10::DeviceType device_type, TrainerDeviceType(s.device));
  ParallelOptions options;
  options.comm.use_nccl = device_type == c10::DeviceType::CUDA;
  MOERL_ASSIGN_OR_RETURN(ParallelState parallel, ParallelState::FromEnvironment(mode, config, options));
  if (parallel.world_size() > 1) {
    MOERL_LOG(INFO) << "rank " << parallel.rank() << " of " << parallel.world_size() << " (" << DebugString(dims)
                    << "), data shard " << parallel.data_shard() << " of " << parallel.num_data_shards();
  }
  return RunTrainerOn(s, parallel, options.comm.use_nccl, should_stop, report);
}

absl::Status RunTrainer(const TrainerSettings& s, const ParallelState& parallel,
                        const std::function<bool()>& should_stop, TrainerReport* report) {
  return RunTrainerOn(s, parallel, /*nccl=*/false, should_stop, report);
}

namespace {

absl::Status RunTrainerOn(const TrainerSettings& s, const ParallelState& parallel, bool nccl,
                          const std::function<bool()>& should_stop, TrainerReport* report) {
  MOERL_RETURN_IF_ERROR(CheckTrainerLayout(s, parallel.dims()));
  if (s.use_deterministic_algorithms) EnableDeterministicAlgorithms();  // (idempotent; ranks as threads)
  try {
    return RunTrainerSteps(s, parallel, nccl, should_stop, report);
  } catch (const CollectiveError& e) {
    return absl::UnavailableError(absl::StrCat("rank ", parallel.rank(), ": ", e.what()));
  }
}

// This rank's device. Several ranks whose groups have no NCCL (in-process
// ranks, Gloo only) keep trainer.device=auto on the host; cuda is refused.
absl::StatusOr<at::Device> RankDevice(const TrainerSettings& s, const ParallelState& parallel, bool nccl) {
  const bool gloo_only = parallel.world_size() > 1 && !nccl;
  if (gloo_only && s.device == "auto") return at::Device(at::kCPU);
  MOERL_ASSIGN_OR_RETURN(const at::Device device, TrainerDevice(s.device, parallel.local_rank()));
  if (gloo_only && !device.is_cpu()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "trainer.device=", s.device, " on ", parallel.world_size(),
        " ranks whose process groups have no NCCL (ranks in one process meet over Gloo, host tensors only); "
        "use trainer.device=cpu, or one process per GPU under a launcher"));
  }
  return device;
}

absl::Status RunTrainerSteps(const TrainerSettings& s, const ParallelState& parallel, bool nccl,
                             const std::function<bool()>& should_stop, TrainerReport* report) {
  const bool writer = parallel.rank() == 0;  // stats, tensorboard, weights, checkpoints
  if (s.threads > 0) at::set_num_threads(static_cast<int>(s.threads));
  std::error_code ec;
  std::filesystem::create_directories(s.RunDir(), ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create '", s.RunDir(), "': ", ec.message()));
  if (writer) {
    // What a killed trainer left half-written (hidden names, never read).
    // Before the first collective below: no other rank writes yet.
    MOERL_ASSIGN_OR_RETURN(std::vector<std::string> left_checkpoints,
                           RemoveAbandonedCheckpointFiles(s.CheckpointsDir()));
    MOERL_ASSIGN_OR_RETURN(std::vector<std::string> left_weights, RemoveAbandonedEntries(s.WeightsDir()));
    if (!left_checkpoints.empty() || !left_weights.empty()) {
      MOERL_LOG(INFO) << "removed " << left_checkpoints.size() << " unfinished checkpoint file(s) and "
                      << left_weights.size() << " unfinished weights folder(s) of an earlier run";
    }
  }
  at::manual_seed(static_cast<uint64_t>(s.run.seed));
  const GrpoOptions grpo = GrpoOptionsFrom(s);
  if (grpo.advantages.reward_norm) {
    MOERL_RETURN_IF_ERROR(ValidateNormConfig(*grpo.advantages.reward_norm, "actor.reward_norm"));
  }
  if (grpo.advantages.adv_norm) MOERL_RETURN_IF_ERROR(ValidateNormConfig(*grpo.advantages.adv_norm, "actor.adv_norm"));
  MOERL_RETURN_IF_ERROR(ValidatePpoLossConfig(grpo.loss));
  MOERL_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromFile(s.actor_path + "/config.json"));
  MOERL_ASSIGN_OR_RETURN(const at::Device device, RankDevice(s, parallel, nccl));
  if (!device.is_cpu()) MOERL_LOG(INFO) << "rank " << parallel.rank() << " trains on " << DeviceName(device);
  MOERL_ASSIGN_OR_RETURN(std::shared_ptr<Qwen3Model> model, BuildModel(s, config, parallel, device));
  std::shared_ptr<Qwen3Model> ref;  // the KL penalty's reference, frozen
  if (s.mode == "grpo" && s.kl_ctl != 0) {
    MOERL_ASSIGN_OR_RETURN(ref, LoadHfModel(s.ref_path));
    if (s.dtype == "bfloat16") ref->to(at::kBFloat16);
    if (!device.is_cpu()) ref->to(device);
    for (at::Tensor& p : ref->parameters()) p.set_requires_grad(false);
  }
  LrSchedule schedule{s.optimizer.lr_scheduler_type, s.optimizer.warmup_steps_proportion,
                      s.optimizer.min_lr_ratio, s.total_train_steps.value_or(0)};
  const std::unique_ptr<TrainOptimizer> optimizer_owner = MakeOptimizer(s, *model, parallel, schedule);
  TrainOptimizer& optimizer = *optimizer_owner;
  TrainerState state;
  state.seed = s.run.seed;
  state.allocation_mode = s.allocation.allocation_mode;
  if (s.Recover()) {
    MOERL_ASSIGN_OR_RETURN(std::optional<std::string> latest, FindLatestCheckpoint(s.CheckpointsDir()));
    if (latest) {
      const bool own_file = RanksHoldDistinctState(parallel) && parallel.rank() != 0;
      MOERL_RETURN_IF_ERROR(LoadTrainerCheckpoint(*latest, model.get(), &optimizer, &state,
                                                  own_file ? RankOptimizerFile(parallel.rank()) : ""));
      MOERL_LOG(INFO) << "resumed from " << *latest << " (step " << state.step << ", data position "
                      << state.data_epoch << "/" << state.data_index << ")";
    }
  }
  report->first_step = report->steps_done = state.step;
  StatsLog stats_log(s.StatsPath());
  if (s.Recover() && writer) {
    // Lines of steps past the checkpoint are trained, and logged, again;
    // they go before the weights below are published, which is when a
    // watching pipeline starts counting lines.
    MOERL_ASSIGN_OR_RETURN(int64_t dropped, stats_log.DropFromStep(state.step));
    if (dropped > 0) MOERL_LOG(INFO) << "dropped " << dropped << " stats.jsonl line(s) of steps >= " << state.step;
  }

  WeightPublisherOptions publish;
  publish.weights_dir = s.WeightsDir();
  publish.dtype = (s.weights_dtype.empty() ? s.dtype : s.weights_dtype) == "bfloat16" ? at::kBFloat16 : at::kFloat;
  publish.max_shard_bytes = static_cast<uint64_t>(s.max_shard_bytes);
  publish.keep = s.keep_weight_versions;
  publish.tokenizer_dir = s.tokenizer_path.empty() ? (s.init_from_scratch ? "" : s.actor_path) : s.tokenizer_path;
  WeightPublisher publisher(publish);
  // Every rank takes part in gathering the weights (FullModel); rank 0
  // writes them.
  BackgroundPublisher background(&publisher, &parallel, writer);
  absl::StatusOr<int64_t> latest = ReadLatestVersion(s.WeightsDir());
  if (!latest.ok() && latest.status().code() != absl::StatusCode::kNotFound) return latest.status();
  // Rank 0 decides; the others follow (they may see LATEST appear meanwhile).
  const bool publish_first = SumOverRanks(parallel, writer && !latest.ok() ? 1.0 : 0.0) > 0;
  if (publish_first) {
    // Before any step: written at once (the model does not change meanwhile).
    background.Start(PublishedModel(model, FullModel(model, parallel), optimizer, publish.dtype, parallel),
                     state.step);
    MOERL_RETURN_IF_ERROR(background.Finish());
    MOERL_LOG(INFO) << "published weights v" << state.step << " to " << s.WeightsDir();
  } else if (writer && latest.ok() && *latest != state.step) {
    MOERL_LOG(WARNING) << "weights/LATEST is v" << *latest << " but training continues from version "
                       << state.step << "; the next step publishes v" << state.step + 1;
  }

  MOERL_ASSIGN_OR_RETURN(std::unique_ptr<StepData> data, MakeStepData(s, state, model->config().vocab_size));
  std::unique_ptr<TensorBoardWriter> tensorboard;
  if (writer) {
    MOERL_ASSIGN_OR_RETURN(tensorboard, TensorBoardWriter::Create(s.RunDir() + "/tensorboard"));
    // A resumed run redoes the steps after its checkpoint (all of them when
    // it starts from step 0 again): readers drop those of the earlier files
    // (stats.jsonl drops its lines likewise).
    MOERL_RETURN_IF_ERROR(tensorboard->WriteSessionStart(state.step));
  }
  // Evaluation: the held-out problems, tokenized once.
  std::optional<Tokenizer> eval_tokenizer;
  std::vector<EvalProblem> eval_problems;
  EvalOptions eval_options;
  if (s.evaluator_freq_steps && writer) {
    MOERL_ASSIGN_OR_RETURN(eval_tokenizer, LoadTrainerTokenizer(s));
    const Tokenizer& tok = *eval_tokenizer;
    MOERL_ASSIGN_OR_RETURN(
        eval_problems,
        LoadEvalProblems(
            s.valid_dataset_path, s.eval_max_prompts, [&](absl::string_view u) { return tok.RenderChatPrompt(u); },
            [&](absl::string_view t) { return tok.Encode(t); }));
    eval_options.n_samples = s.eval_n_samples;
    eval_options.temperature = s.eval_temperature;
    eval_options.max_new_tokens = s.eval_max_new_tokens;
    for (int32_t id : tok.stop_ids()) eval_options.stop_ids.push_back(id);
    eval_options.seed = static_cast<uint64_t>(s.run.seed);
  }
  TrainStepOptions step_options;
  step_options.ppo_n_minibatches = s.ppo_n_minibatches;
  step_options.max_tokens_per_mb = s.max_tokens_per_mb;
  double last_checkpoint_seconds = -1;  // < 0: no checkpoint since the last stats line
  while (!(s.total_train_steps && state.step >= *s.total_train_steps)) {
    if (should_stop && should_stop()) break;
    const absl::Time wait_start = absl::Now();
    std::vector<TrainSequence> seqs;
    TrainerState next = state;
    MOERL_ASSIGN_OR_RETURN(bool got, data->Next(should_stop, &next, &seqs));
    if (!got) break;
    StatsRecorder stats;
    stats.Scalar("timeperf/rollout", Seconds(wait_start));

    const absl::Time train_start = absl::Now();
    const double sent_before_step = BytesSent(parallel);
    std::unique_ptr<Objective> objective;
    if (s.mode == "grpo") {
      objective = std::make_unique<GrpoObjective>(grpo, state.step, ref.get());
    } else {
      objective = std::make_unique<SftObjective>(s.temperature);
    }
    MOERL_RETURN_IF_ERROR(
        RunTrainStep(*model, optimizer, *objective, seqs, step_options, state.step, &stats,
                     parallel.world_size() > 1 ? &parallel : nullptr));
    const double train_seconds = Seconds(train_start);
    stats.Scalar("timeperf/train_step", train_seconds);
    const double sent_after_step = BytesSent(parallel);
    if (parallel.world_size() > 1) stats.Scalar("comm/train_bytes_sent", sent_after_step - sent_before_step);
    next.step = state.step + 1;
    state = next;

    // The gathered model serves publication, the checkpoint and the
    // evaluation of this version; every rank takes part in gathering it
    // (collectives), rank 0 alone evaluates.
    const absl::Time publish_start = absl::Now();
    const std::shared_ptr<Qwen3Model> full = FullModel(model, parallel);
    MOERL_RETURN_IF_ERROR(background.Finish());
    std::shared_ptr<Qwen3Model> published = PublishedModel(model, full, optimizer, publish.dtype, parallel);
    if (published == model) {  // one process: the writer gets a copy, training goes on
      published = GatherFullModel(*model, HfBindings(*model), model->dtype(), parallel);
    }
    background.Start(std::move(published), state.step);
    stats.Scalar("timeperf/update_weights", Seconds(publish_start));
    if (parallel.world_size() > 1) stats.Scalar("comm/publish_bytes_sent", BytesSent(parallel) - sent_after_step);
    // Saved at the end of the previous step, after its stats line.
    if (last_checkpoint_seconds >= 0) stats.Scalar("timeperf/checkpoint_for_recover", last_checkpoint_seconds);
    last_checkpoint_seconds = -1;

    const bool evaluate = s.evaluator_freq_steps && state.step % *s.evaluator_freq_steps == 0;
    // The writer may be running a forward on `full` (its probe).
    if (evaluate) MOERL_RETURN_IF_ERROR(background.Finish());
    if (evaluate && writer) {
      const absl::Time eval_start = absl::Now();
      const Tokenizer& tok = *eval_tokenizer;
      DecodeFn decode = [&](const std::vector<int64_t>& ids) {
        return tok.Decode(std::vector<int32_t>(ids.begin(), ids.end()), {.skip_special_tokens = true, .skip_unknown_ids = true});
      };
      MOERL_ASSIGN_OR_RETURN(EvalResult eval, Evaluate(full, eval_problems, decode, eval_options));
      stats.Scalar("eval-rollout/reward", eval.reward);
      stats.Scalar("eval-rollout/greedy_accuracy", eval.greedy_accuracy);
      stats.Scalar("timeperf/eval", Seconds(eval_start));
      MOERL_LOG(INFO) << "eval after step " << state.step - 1 << ": reward " << eval.reward << ", greedy accuracy "
                      << eval.greedy_accuracy << " on " << eval.prompts << " prompts";
    }

    double tokens = 0;
    for (const TrainSequence& q : seqs) tokens += static_cast<double>(q.Length());
    const std::string loss_key = s.mode == "grpo" ? "ppo_actor/update/actor_loss" : "sft/nll";
    report->last_loss = stats.Value(loss_key);
    report->last_reward = stats.Value("ppo_actor/task_reward");
    report->steps_done = state.step;
    std::map<std::string, double> values = stats.Flatten();
    values["version"] = static_cast<double>(state.step);
    values["timeperf/tokens_per_second"] = tokens / std::max(train_seconds, 1e-9);
    if (writer) {
      // The stats line goes before the checkpoint: a kill in between trains
      // the step again, and the resumed run drops the line and logs it again
      // (DropFromStep); the other order would lose the line.
      MOERL_RETURN_IF_ERROR(stats_log.Append(state.step - 1, values));
      MOERL_RETURN_IF_ERROR(tensorboard->WriteScalars(state.step - 1, values));
      if ((state.step - 1) % s.log_every == 0) {
        std::fprintf(stderr, "%s\n",
                     absl::StrFormat("trainer: step %d -> v%d  %s %.4f  loss %.5f  grad_norm %.4f  lr %.3g  "
                                     "%.0f tokens/s  (%.2f s)",
                                     state.step - 1, state.step, s.mode == "grpo" ? "reward" : "nll",
                                     s.mode == "grpo" ? report->last_reward : report->last_loss, report->last_loss,
                                     stats.Value("ppo_actor/update/grad_norm"), stats.Value("ppo_actor/update/lr"),
                                     values["timeperf/tokens_per_second"], train_seconds)
                         .c_str());
      }
    }
    if (s.saver_freq_steps && state.step % *s.saver_freq_steps == 0) {
      const absl::Time save_start = absl::Now();
      MOERL_RETURN_IF_ERROR(background.Finish());
      MOERL_RETURN_IF_ERROR(SaveCheckpointOnRanks(s, *model, *full, optimizer, state, parallel));
      last_checkpoint_seconds = Seconds(save_start);
    }
  }
  MOERL_RETURN_IF_ERROR(background.Join());
  MOERL_LOG(INFO) << "trainer stopped after step " << state.step << " (policy version " << state.step << ")";
  return absl::OkStatus();
}

}  // namespace

}  // namespace moerl
