// The trainer's GPU path (a --config=cuda build on a machine with a GPU):
// the model on cuda:0 against transformers (fp32 and bf16) and against the
// same model on the host; the one-process trainer on cuda:0 against the
// same trainer on the host (losses of every step, final weights); a bf16
// run that checkpoints and resumes on the GPU. Without a visible GPU every
// test is SKIPPED with a message (tools/gpu_check.sh counts a skip as a
// failure).
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/weights_dir.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "trainer/device.h"
#include "trainer/model/fixture.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/model.h"
#include "trainer/testing/trainer_fixture.h"
#include "trainer/trainer_run.h"

namespace moerl {
namespace {

#define SKIP_WITHOUT_GPU()                                                                          \
  if (VisibleGpus() == 0) GTEST_SKIP() << "no GPU visible to this process: the GPU path is untested"

const c10::Device kGpu(c10::DeviceType::CUDA, 0);

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

ModelInput InputFromBatch(const at::Tensor& ids_bl) {
  std::vector<std::vector<int64_t>> seqs;
  for (int64_t b = 0; b < ids_bl.size(0); ++b) {
    at::Tensor row = ids_bl[b].contiguous();
    seqs.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  }
  return ModelInput::Pack(seqs);
}

std::unique_ptr<OracleFixture> Fixture() {
  auto fx = OracleFixture::Open(std::string(kTestMoeDir) + "/oracle.safetensors");
  EXPECT_TRUE(fx.ok()) << fx.status();
  return fx.ok() ? std::move(*fx) : nullptr;
}

// Worst over tensors of max|got - want| / max|want|.
double WorstGradient(Qwen3Model& model, const std::function<at::Tensor(const std::string&)>& want_of,
                     std::string* worst_name) {
  double worst = 0;
  for (const HfBinding& b : HfBindings(model, /*grads=*/true)) {
    const at::Tensor want = want_of(b.hf_name);
    EXPECT_TRUE(want.defined()) << b.hf_name;
    if (!want.defined()) continue;
    const double scale = std::max(want.abs().max().item<double>(), 1e-8);
    const double rel = MaxAbsDiff(b.view, want) / scale;
    if (rel > worst) {
      worst = rel;
      *worst_name = b.hf_name;
    }
  }
  return worst;
}

// The model on cuda:0 in `dtype` against transformers (fp32, on the host):
// logits relative to their largest, loss, every gradient.
void ExpectGpuModelMatchesTransformers(at::ScalarType dtype, double logits_tol, double loss_tol, double grad_tol) {
  const char* name = dtype == at::kBFloat16 ? "bf16" : "fp32";
  std::shared_ptr<Qwen3Model> model = LoadTestModel(dtype);
  std::unique_ptr<OracleFixture> fx = Fixture();
  ASSERT_TRUE(model && fx);
  model->to(kGpu);
  ASSERT_TRUE(model->device().is_cuda());
  const ModelInput in = InputFromBatch(fx->Get("input_ids"));
  {
    at::NoGradGuard no_grad;
    ModelOutput out = model->Forward(in);
    ASSERT_TRUE(out.hidden_td.is_cuda());
    const at::Tensor want_blv = fx->Get("logits");
    const at::Tensor got_tv = model->Logits(out.hidden_td);
    const double rel = MaxAbsDiff(got_tv, want_blv.reshape({-1, want_blv.size(2)})) /
                       want_blv.abs().max().item<double>();
    std::cout << "cuda " << name << ": max |logits - transformers| / max |logits| = " << rel << "\n";
    EXPECT_LE(rel, logits_tol);
  }
  at::Tensor loss = model->CausalLmLoss(in);
  const double want_loss = fx->Get("loss").item<double>();
  const double loss_rel = std::abs(loss.item<double>() - want_loss) / std::abs(want_loss);
  loss.backward();
  std::string worst_name;
  const double worst = WorstGradient(*model, [&](const std::string& n) { return fx->Get("grad." + n); }, &worst_name);
  std::cout << "cuda " << name << ": loss relative difference " << loss_rel
            << ", worst relative gradient difference " << worst << " (" << worst_name << ")\n";
  EXPECT_LE(loss_rel, loss_tol);
  EXPECT_LE(worst, grad_tol) << worst_name;
}

TEST(ModelOnGpu, Fp32MatchesTransformers) {
  SKIP_WITHOUT_GPU();
  // cuBLAS in full fp32 (TF32 off, torch's default for matmuls).
  at::globalContext().setAllowTF32CuBLAS(false);
  ExpectGpuModelMatchesTransformers(at::kFloat, 1e-5, 1e-5, 1e-4);
}

TEST(ModelOnGpu, Bf16MatchesTransformersWithinBf16Rounding) {
  SKIP_WITHOUT_GPU();
  // bf16 keeps 8 mantissa bits (relative rounding 2^-9 = 2e-3 per op).
  ExpectGpuModelMatchesTransformers(at::kBFloat16, 3e-2, 1e-2, 2e-1);
}

TEST(ModelOnGpu, Fp32LossAndGradientsMatchTheHost) {
  SKIP_WITHOUT_GPU();
  at::globalContext().setAllowTF32CuBLAS(false);
  std::unique_ptr<OracleFixture> fx = Fixture();
  std::shared_ptr<Qwen3Model> host = LoadTestModel(at::kFloat), gpu = LoadTestModel(at::kFloat);
  ASSERT_TRUE(fx && host && gpu);
  gpu->to(kGpu);
  const ModelInput in = InputFromBatch(fx->Get("input_ids"));
  at::Tensor host_loss = host->CausalLmLoss(in), gpu_loss = gpu->CausalLmLoss(in);
  host_loss.backward();
  gpu_loss.backward();
  const double loss_rel = std::abs(gpu_loss.item<double>() - host_loss.item<double>()) / host_loss.item<double>();
  std::map<std::string, at::Tensor> host_grads;
  for (const HfBinding& b : HfBindings(*host, /*grads=*/true)) host_grads[b.hf_name] = b.view;
  std::string worst_name;
  const double worst = WorstGradient(*gpu, [&](const std::string& n) { return host_grads[n]; }, &worst_name);
  std::cout << "cuda vs host fp32: loss " << loss_rel << ", worst gradient " << worst << " (" << worst_name << ")\n";
  EXPECT_LE(loss_rel, 1e-5);
  EXPECT_LE(worst, 1e-5) << worst_name;
}

// Every step's actor loss and gradient norm from stats.jsonl.
std::vector<double> StepLosses(const TrainerSettings& s) {
  std::vector<double> out;
  std::ifstream in(s.StatsPath());
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    out.push_back(j.value("ppo_actor/update/actor_loss/avg", std::nan("")));
    out.push_back(j.value("ppo_actor/update/grad_norm", std::nan("")));
  }
  return out;
}

// The published weights of two runs: ||a - b|| / ||b|| over the whole
// model (the bar) and the worst max|a - b| / max|b| of a tensor (reported:
// AdamW's first steps amplify tiny gradient differences of elements whose
// gradient is near zero, as between ranks and one process).
void CompareWeights(const std::string& dir_a, const std::string& dir_b, double* norm_rel, double* worst_tensor) {
  auto a = LoadHfModel(dir_a), b = LoadHfModel(dir_b);
  ASSERT_TRUE(a.ok() && b.ok());
  const auto pa = (*a)->named_parameters(), pb = (*b)->named_parameters();
  double diff_sq = 0, norm_sq = 0;
  *worst_tensor = 0;
  for (const auto& item : pb) {
    const at::Tensor want = item.value().to(at::kDouble), got = pa.find(item.key())->to(at::kDouble);
    diff_sq += (got - want).pow(2).sum().item<double>();
    norm_sq += want.pow(2).sum().item<double>();
    const double rel = MaxAbsDiff(got, want) / std::max(want.abs().max().item<double>(), 1e-12);
    *worst_tensor = std::max(*worst_tensor, rel);
  }
  *norm_rel = std::sqrt(diff_sq / std::max(norm_sq, 1e-300));
}

TEST(TrainerOnGpu, Fp32GrpoStepsMatchTheHostTrainer) {
  SKIP_WITHOUT_GPU();
  at::globalContext().setAllowTF32CuBLAS(false);
  const std::string root = FreshTestDir("gpu_vs_host");
  const TrainerSettings host = TestTrainerSettings(root, "host", {"+trainer.device=cpu", "+total_train_steps=3"});
  const TrainerSettings gpu = TestTrainerSettings(root, "gpu", {"+trainer.device=cuda", "+total_train_steps=3"});
  const TrainerSettings again = TestTrainerSettings(root, "gpu2", {"+trainer.device=cuda", "+total_train_steps=3"});
  WriteTestBatches(host.BatchesDir(), 3, 2, 1);
  for (const TrainerSettings* s : {&gpu, &again}) {
    std::filesystem::create_directories(s->BatchesDir());
    for (int b = 0; b < 3; ++b) {
      std::filesystem::copy_file(absl::StrFormat("%s/%06d.rec", host.BatchesDir(), b),
                                 absl::StrFormat("%s/%06d.rec", s->BatchesDir(), b));
    }
  }
  TrainerReport report;
  for (const TrainerSettings* s : {&host, &gpu, &again}) {
    const absl::Status status = RunTrainer(*s, nullptr, &report);
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_EQ(report.steps_done, 3);
  }
  const std::vector<double> want = StepLosses(host), got = StepLosses(gpu);
  ASSERT_EQ(want.size(), 6u);  // loss, grad norm per step
  ASSERT_EQ(got.size(), 6u);
  double worst_loss = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst_loss = std::max(worst_loss, std::abs(got[i] - want[i]) / std::max(std::abs(want[i]), 1e-12));
  }
  double weights = 0, worst_weight = 0, rerun = 0, rerun_worst = 0;
  CompareWeights(VersionDir(gpu.WeightsDir(), 3), VersionDir(host.WeightsDir(), 3), &weights, &worst_weight);
  CompareWeights(VersionDir(again.WeightsDir(), 3), VersionDir(gpu.WeightsDir(), 3), &rerun, &rerun_worst);
  std::cout << "trainer on cuda vs host, 3 GRPO steps fp32: worst step loss / grad norm " << worst_loss
            << ", weights (norm) " << weights << ", worst tensor (max element) " << worst_weight
            << "; two GPU runs differ by " << rerun
            << (rerun_worst == 0 ? " (bit-identical)" : " (not bit-identical: GPU atomics)") << "\n";
  EXPECT_LE(worst_loss, 1e-5);
  EXPECT_LE(weights, 1e-5);
}

TEST(TrainerOnGpu, Bf16RunCheckpointsAndResumes) {
  SKIP_WITHOUT_GPU();
  const std::string root = FreshTestDir("gpu_bf16");
  const std::vector<std::string> bf16 = {"+trainer.device=cuda", "actor.dtype=bfloat16"};
  std::vector<std::string> first = bf16, second = bf16;
  first.push_back("+total_train_steps=2");
  second.push_back("+total_train_steps=4");
  const TrainerSettings s1 = TestTrainerSettings(root, "trial", first);
  const TrainerSettings s2 = TestTrainerSettings(root, "trial", second);
  WriteTestBatches(s1.BatchesDir(), 4, 2, 3);
  TrainerReport report;
  absl::Status status = RunTrainer(s1, nullptr, &report);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.steps_done, 2);
  status = RunTrainer(s2, nullptr, &report);  // recover.mode=auto: from step-2
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(report.first_step, 2);
  EXPECT_EQ(report.steps_done, 4);
  EXPECT_TRUE(std::isfinite(report.last_loss));
  for (double loss : StepLosses(s2)) EXPECT_TRUE(std::isfinite(loss));
  EXPECT_EQ(*ReadLatestVersion(s2.WeightsDir()), 4);
}

TEST(TrainerDevice, MoreLocalRanksThanGpusIsAnError) {
  SKIP_WITHOUT_GPU();
  auto device = TrainerDevice("cuda", VisibleGpus());
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(device.status().message().find("local rank"), std::string::npos) << device.status();
  auto zero = TrainerDevice("auto", 0);
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_TRUE(zero->is_cuda());
}

}  // namespace
}  // namespace moerl
