#include "trainer/testing/rank_steps.h"

#include <ATen/ops/zeros_like.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/proto/trajectory.pb.h"
#include "common/status.h"
#include "common/transport/record_io.h"
#include "nlohmann/json.hpp"
#include "trainer/deterministic.h"
#include "trainer/full_model.h"
#include "trainer/grpo_objective.h"
#include "trainer/model/hf_weights.h"
#include "trainer/optimizer.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/stats_log.h"
#include "trainer/testing/trainer_fixture.h"
#include "trainer/train_step.h"

namespace moerl {
namespace {

std::map<std::string, at::Tensor> NamedTensors(Qwen3Model& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

absl::StatusOr<RankStepsResult> Steps(const TrainerSettings& s, const ParallelState& parallel,
                                      const std::vector<std::vector<TrainSequence>>& batches,
                                      const RankStepsOptions& options) {
  MOERL_RETURN_IF_ERROR(CheckLayoutImplemented(parallel.dims()));  // as RunTrainer
  if (s.threads > 0) at::set_num_threads(static_cast<int>(s.threads));
  if (s.use_deterministic_algorithms) EnableDeterministicAlgorithms();
  at::manual_seed(static_cast<uint64_t>(s.run.seed));
  MOERL_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromFile(s.actor_path + "/config.json"));
  auto model = std::make_shared<Qwen3Model>(config);
  MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, parallel));
  MOERL_RETURN_IF_ERROR(LoadHfWeights(s.actor_path, model.get()));
  if (s.dtype == "bfloat16") model->to(at::kBFloat16);
  LrSchedule schedule{s.optimizer.lr_scheduler_type, s.optimizer.warmup_steps_proportion, s.optimizer.min_lr_ratio,
                      static_cast<int64_t>(batches.size())};
  TrainOptimizer optimizer(model->parameters(), s.optimizer, schedule);
  TrainStepOptions step_options;
  step_options.ppo_n_minibatches = s.ppo_n_minibatches;
  step_options.max_tokens_per_mb = s.max_tokens_per_mb;
  const GrpoOptions grpo = GrpoOptionsFrom(s);
  const ParallelState* shared = parallel.world_size() > 1 ? &parallel : nullptr;

  RankStepsResult out;
  for (size_t step = 0; step < batches.size(); ++step) {
    GrpoObjective objective(grpo, static_cast<int64_t>(step));
    StatsRecorder stats;
    const auto comm_before = parallel.CommBytes();
    const auto start = std::chrono::steady_clock::now();
    MOERL_RETURN_IF_ERROR(RunTrainStep(*model, optimizer, objective, batches[step], step_options,
                                       static_cast<int64_t>(step), &stats, shared));
    out.step_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    out.step_comm.push_back(CommDifference(parallel.CommBytes(), comm_before));
    out.losses.push_back(stats.Value("ppo_actor/update/actor_loss"));
    out.grad_norms.push_back(stats.Value("ppo_actor/update/grad_norm"));
    if (step == 0 && options.gather_gradients) {
      // A parameter no token reached this minibatch has no gradient.
      for (at::Tensor& p : model->parameters()) {
        if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      }
      const auto gather_before = parallel.CommBytes();
      std::shared_ptr<Qwen3Model> grads =
          GatherFullModel(*model, HfBindings(*model, /*grads=*/true), at::kFloat, parallel);
      out.gather_comm = CommDifference(parallel.CommBytes(), gather_before);
      out.first_grads = NamedTensors(*grads);
    }
  }
  if (options.gather_weights) {
    const auto publish_before = parallel.CommBytes();
    std::shared_ptr<Qwen3Model> full = FullModel(model, parallel);
    out.publish_comm = CommDifference(parallel.CommBytes(), publish_before);
    out.final_weights = NamedTensors(*full);
  }
  return out;
}

}  // namespace

absl::StatusOr<RankStepsResult> RunRankSteps(const TrainerSettings& settings, const ParallelState& parallel,
                                             const std::vector<std::vector<TrainSequence>>& batches,
                                             const RankStepsOptions& options) {
  try {
    return Steps(settings, parallel, batches, options);
  } catch (const CollectiveError& e) {
    return absl::UnavailableError(absl::StrCat("rank ", parallel.rank(), ": ", e.what()));
  }
}

absl::StatusOr<std::vector<std::vector<TrainSequence>>> ReadBatchFiles(const std::string& dir) {
  std::vector<std::string> paths;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".rec") paths.push_back(e.path().string());
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot list '", dir, "': ", ec.message()));
  std::sort(paths.begin(), paths.end());
  std::vector<std::vector<TrainSequence>> out;
  for (const std::string& path : paths) {
    MOERL_ASSIGN_OR_RETURN(std::unique_ptr<RecordReader> reader, RecordReader::Open(path));
    proto::TrajectoryBatch batch;
    MOERL_ASSIGN_OR_RETURN(bool got, reader->NextMessage(&batch));
    if (!got) return absl::InvalidArgumentError(absl::StrCat(path, " holds no batch"));
    out.push_back(FromTrajectoryBatch(batch));
  }
  return out;
}

absl::Status WriteTinyMoe(const std::string& dir, int layers, uint64_t seed,
                          const std::map<std::string, int64_t>& changes) {
  std::ifstream in(std::string(kTestMoeDir) + "/config.json");
  if (!in) return absl::NotFoundError(absl::StrCat(kTestMoeDir, "/config.json is not readable"));
  nlohmann::json config;
  in >> config;
  config["num_hidden_layers"] = layers;
  for (const auto& [key, value] : changes) config[key] = value;
  // SaveHfCheckpoint writes config.json with the weights; read it from beside.
  const std::string config_path = dir + ".config.json";
  std::ofstream(config_path) << config.dump(2);
  MOERL_ASSIGN_OR_RETURN(ModelConfig model_config, ModelConfig::FromFile(config_path));
  auto model = std::make_shared<Qwen3Model>(model_config);
  model->InitializeWeights(seed);
  return SaveHfCheckpoint(*model, dir, at::kFloat, uint64_t{1} << 30);
}

std::map<RankGroupKind, CommCounts> CommDifference(const std::map<RankGroupKind, CommCounts>& after,
                                                   const std::map<RankGroupKind, CommCounts>& before) {
  std::map<RankGroupKind, CommCounts> out;
  for (const auto& [kind, c] : after) {
    auto it = before.find(kind);
    out[kind] = it == before.end() ? c : c - it->second;
  }
  return out;
}

}  // namespace moerl
