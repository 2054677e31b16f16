// The layout-independent optimizer state: a one-process AdamW state (two
// steps on random gradients, fp32 and bf16 with fp32 masters) written as
// whole tensors, read under d1t2, (attn:d2|ffn:e2) and (attn:t2|ffn:t2),
// gives every rank exactly its slice of every moment and master (bit for
// bit) and the adam step; gathered again on the ranks it is the written
// state bit for bit. Export/Import round-trips on one process, and a bad
// state.json or a wrong shape is an error naming what is wrong.
#include "trainer/optimizer_state_io.h"

#include <ATen/ops/randn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/status.h"
#include "trainer/full_model.h"
#include "trainer/parallel/in_process_ranks.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/testing/rank_testing.h"
#include "trainer/testing/trainer_fixture.h"

namespace moerl {
namespace {

using ParameterState = TrainOptimizer::ParameterOptimizerState;

std::string TestDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp != nullptr ? tmp : "/tmp") + "/" + name;
}

ModelConfig TinyMoeConfig() {
  auto config = ModelConfig::FromFile(std::string(kTestMoeDir) + "/config.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

std::unique_ptr<TrainOptimizer> MakeOptimizer(Qwen3Model& model) {
  return std::make_unique<TrainOptimizer>(model.parameters(), OptimizerSettings{}, LrSchedule{});
}

// Two AdamW steps on seeded random gradients.
void TwoSteps(Qwen3Model& model, TrainOptimizer& optimizer) {
  at::manual_seed(7);
  for (int step = 0; step < 2; ++step) {
    optimizer.ZeroGrad();
    for (at::Tensor& p : model.parameters()) p.mutable_grad() = at::randn(p.sizes()).to(p.scalar_type());
    optimizer.Step(step);
  }
}

// HF name -> whole tensor of one field of a gathered state.
std::map<std::string, at::Tensor> ByName(Qwen3Model& full) {
  std::map<std::string, at::Tensor> out;
  for (const HfBinding& b : HfBindings(full)) out[b.hf_name] = b.view.detach().clone();
  return out;
}

class OptimizerStateIo : public ::testing::TestWithParam<c10::ScalarType> {};

TEST_P(OptimizerStateIo, EveryLayoutReadsItsSliceAndGathersBackBitForBit) {
  const c10::ScalarType dtype = GetParam();
  const std::string dir = TestDir(absl::StrCat("state_", c10::toString(dtype)));
  auto one = std::make_shared<Qwen3Model>(TinyMoeConfig());
  one->InitializeWeights(3);
  one->to(dtype);
  auto opt = MakeOptimizer(*one);
  TwoSteps(*one, *opt);
  ASSERT_EQ(opt->adam_step(), 2);
  const GatheredOptimizerState written = GatherOptimizerState(*one, *opt, ParallelState::SingleProcess());
  ASSERT_EQ(written.master != nullptr, dtype != at::kFloat);
  ASSERT_TRUE(WriteOptimizerState(written, dir).ok());
  std::map<std::string, std::map<std::string, at::Tensor>> want = {{"exp_avg", ByName(*written.exp_avg)},
                                                                   {"exp_avg_sq", ByName(*written.exp_avg_sq)}};
  if (written.master) want["master"] = ByName(*written.master);

  for (const char* layout : {"megatron:d1t2", "megatron:(attn:d2|ffn:e2)", "megatron:(attn:t2|ffn:t2)"}) {
    SCOPED_TRACE(layout);
    ParallelOptions options;
    options.comm.timeout = std::chrono::seconds(30);
    absl::Status status = RunInProcessRanks(
        LayoutDims(layout),
        [&](const ParallelState& state) -> absl::Status {
          const std::string rank = absl::StrCat("rank ", state.rank(), ": ");
          auto model = std::make_shared<Qwen3Model>(TinyMoeConfig());
          MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state));
          model->InitializeWeights(4);
          model->to(dtype);
          auto mine = MakeOptimizer(*model);
          MOERL_RETURN_IF_ERROR(ReadOptimizerState(dir, *model, mine.get()));
          if (mine->adam_step() != 2) return absl::InternalError(rank + "adam step not 2");
          const std::vector<ParameterState> states = mine->ExportParameterStates();
          std::map<std::string, std::vector<at::Tensor>> fields;
          for (const ParameterState& s : states) {
            fields["exp_avg"].push_back(s.exp_avg);
            fields["exp_avg_sq"].push_back(s.exp_avg_sq);
            if (s.master.defined()) fields["master"].push_back(s.master);
          }
          if (fields.size() != want.size()) return absl::InternalError(rank + "masters where none were written");
          for (auto& [field, tensors] : fields) {
            for (const HfBinding& b : MasterBindings(*model, tensors)) {
              const at::Tensor& w = want.at(field).at(b.hf_name);
              const at::Tensor part =
                  b.slice_dim >= 0 ? w.narrow(b.slice_dim, b.slice_start, b.view.size(b.slice_dim)) : w;
              if (!b.view.equal(part)) return absl::InternalError(rank + field + " of " + b.hf_name);
            }
          }
          const GatheredOptimizerState again = GatherOptimizerState(*model, *mine, state);
          if (again.adam_step != 2) return absl::InternalError(rank + "gathered adam step");
          std::map<std::string, Qwen3Model*> gathered = {{"exp_avg", again.exp_avg.get()},
                                                         {"exp_avg_sq", again.exp_avg_sq.get()}};
          if (again.master) gathered["master"] = again.master.get();
          for (auto& [field, full] : gathered) {
            for (const auto& [name, t] : ByName(*full)) {
              if (!t.equal(want.at(field).at(name))) return absl::InternalError(rank + "gathered " + field + " " + name);
            }
          }
          return absl::OkStatus();
        },
        options);
    EXPECT_TRUE(status.ok()) << status;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, OptimizerStateIo, ::testing::Values(at::kFloat, at::kBFloat16),
                         [](const ::testing::TestParamInfo<c10::ScalarType>& info) {
                           return std::string(info.param == at::kFloat ? "fp32" : "bf16_masters");
                         });

TEST(OptimizerStateIoErrors, ExportImportRoundTripsAndWrongInputIsNamed) {
  auto model = std::make_shared<Qwen3Model>(TinyMoeConfig());
  model->InitializeWeights(3);
  auto opt = MakeOptimizer(*model);
  EXPECT_EQ(opt->adam_step(), 0);
  TwoSteps(*model, *opt);
  std::vector<ParameterState> states = opt->ExportParameterStates();
  auto other = MakeOptimizer(*model);
  ASSERT_TRUE(other->ImportParameterStates(states, opt->adam_step()).ok());
  EXPECT_EQ(other->adam_step(), 2);
  const std::vector<ParameterState> back = other->ExportParameterStates();
  for (size_t i = 0; i < states.size(); ++i) {
    EXPECT_TRUE(back[i].exp_avg.equal(states[i].exp_avg)) << i;
    EXPECT_TRUE(back[i].exp_avg_sq.equal(states[i].exp_avg_sq)) << i;
  }
  states[1].exp_avg = states[1].exp_avg.narrow(0, 0, 1);
  absl::Status shape = other->ImportParameterStates(states, 2);
  EXPECT_EQ(shape.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(shape.message()).find("parameter 1: exp_avg has shape"), std::string::npos) << shape;
  states.pop_back();
  EXPECT_EQ(other->ImportParameterStates(states, 2).code(), absl::StatusCode::kInvalidArgument);

  const std::string dir = TestDir("bad_state");
  ASSERT_TRUE(WriteOptimizerState(GatherOptimizerState(*model, *opt, ParallelState::SingleProcess()), dir).ok());
  std::ofstream(dir + "/state.json") << R"({"format": "moerl-optimizer-state", "version": 2})";
  absl::Status version = ReadOptimizerState(dir, *model, other.get());
  EXPECT_EQ(version.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(version.message()).find(dir + "/state.json: version 2, expected 1"), std::string::npos)
      << version;
}

}  // namespace
}  // namespace moerl
