// One training step of the tiny MoE on every rank of a real launch, checked
// against one process: proves that the launcher's variables, the TCPStore
// rendezvous and the Gloo groups work across processes.
//
//   torchrun --no-python --nproc-per-node 2 parallel_smoke
//       'megatron:(attn:d2|ffn:e2)' trainer/model/testdata/moe/config.json
// (one command line)
//
// Rank 0 also runs the one-process model on the whole batch and exits 1 when
// the global loss or grad norm differs by more than 1e-5 (relative). A third
// argument `die=R` makes rank R exit in the middle of the step (after its
// forward, before the all-to-all of the backward), for the dead-rank test:
// the others must then fail with an error that names R, not hang.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "common/status.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/testing/tiny_lm.h"

namespace moerl {
namespace {

// CE summed over these sequences' predictions / global_rows, plus router shares.
at::Tensor LossShare(Qwen3Model& model, const std::vector<std::vector<int64_t>>& seqs, int64_t global_rows) {
  ModelInput in = ModelInput::Pack(seqs);
  ModelOutput out = model.Forward(in);
  return CrossEntropyShare(model, in, out.hidden_td, global_rows) + out.aux_loss * model.config().router_aux_loss_coef;
}

absl::Status Run(int argc, char** argv) {
  if (argc < 3) return absl::InvalidArgumentError("usage: parallel_smoke ALLOCATION_MODE CONFIG_JSON [die=RANK]");
  int die_rank = -1;
  if (argc > 3 && (!absl::StartsWith(argv[3], "die=") || !absl::SimpleAtoi(argv[3] + 4, &die_rank))) {
    return absl::InvalidArgumentError(std::string("expected die=RANK, got ") + argv[3]);
  }
  MOERL_ASSIGN_OR_RETURN(AllocationMode mode, ParseAllocationMode(argv[1]));
  MOERL_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromFile(argv[2]));
  ParallelOptions options;
  options.comm.timeout = std::chrono::seconds(60);
  options.comm.heartbeat_interval = std::chrono::milliseconds(500);
  MOERL_ASSIGN_OR_RETURN(ParallelState state, ParallelState::FromEnvironment(mode, config, options));

  const auto seqs = LcgSequences(config.vocab_size, {7, 5, 9, 6});
  std::vector<std::vector<int64_t>> mine;
  for (size_t i = state.data_shard(); i < seqs.size(); i += state.num_data_shards()) mine.push_back(seqs[i]);
  int64_t local_rows = 0;
  for (const auto& s : mine) local_rows += static_cast<int64_t>(s.size()) - 1;
  const auto global_rows = static_cast<int64_t>(SumOverDataParallel(state, static_cast<double>(local_rows)));

  auto model = std::make_shared<Qwen3Model>(config);
  MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state));
  model->InitializeWeights(1);
  at::Tensor loss = LossShare(*model, mine, global_rows);
  if (state.rank() == die_rank) {
    std::fprintf(stderr, "parallel_smoke: rank %d exits on purpose\n", die_rank);
    std::fflush(stderr);
    _exit(3);
  }
  try {
    loss.backward();
  } catch (const CollectiveError& e) {
    return absl::UnavailableError(e.what());
  } catch (const c10::Error& e) {  // autograd rethrows errors of backward functions as c10::Error
    return absl::UnavailableError(e.what_without_backtrace());
  }
  GradientReducer reducer(state);
  MOERL_RETURN_IF_ERROR(reducer.Reduce(*model));
  const double norm = GlobalGradNorm(*model, state);
  at::Tensor total = loss.detach().to(at::kDouble).reshape({1}).clone();
  state.group(RankGroupKind::kDataContext).AllReduceSum(total);
  std::printf("parallel_smoke: rank %d of %d: loss share %.8f, global loss %.8f, grad norm %.8f\n", state.rank(),
              state.world_size(), loss.item<double>(), total.item<double>(), norm);
  if (state.rank() == 0) {
    auto reference = std::make_shared<Qwen3Model>(config);
    reference->InitializeWeights(1);
    at::Tensor ref_loss = LossShare(*reference, seqs, global_rows);
    ref_loss.backward();
    const double ref_norm = GlobalGradNorm(*reference, ParallelState::SingleProcess());
    const double loss_err = std::abs(total.item<double>() - ref_loss.item<double>()) / std::abs(ref_loss.item<double>());
    const double norm_err = std::abs(norm - ref_norm) / ref_norm;
    std::printf("parallel_smoke: one process: loss %.8f, grad norm %.8f; relative differences %.2e, %.2e\n",
                ref_loss.item<double>(), ref_norm, loss_err, norm_err);
    if (loss_err > 1e-5 || norm_err > 1e-5) return absl::InternalError("the parallel step differs from one process");
    std::printf("parallel_smoke: ok\n");
  }
  state.group(RankGroupKind::kDataContext).Barrier();
  return absl::OkStatus();
}

}  // namespace
}  // namespace moerl

int main(int argc, char** argv) {
  absl::Status status = moerl::Run(argc, argv);
  if (!status.ok()) {
    std::fprintf(stderr, "parallel_smoke: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
