// The expert-parallel dispatcher against the local one (the reference): two
// or four EP ranks as threads, each with its own tokens; outputs, input
// gradients, router gradients and expert gradients must match one process
// running the local dispatcher on each rank's tokens with all experts, within
// 1e-6 in fp32 (see MaxDiff).
#include "trainer/parallel/alltoall_dispatcher.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/empty.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "trainer/parallel/in_process_ranks.h"

namespace moerl {
namespace {

constexpr int64_t kExperts = 8, kHidden = 16, kFfn = 12, kTopK = 2;

at::Tensor Randn(std::vector<int64_t> shape, at::Generator& gen, double std) {
  return at::empty(shape, at::TensorOptions().dtype(at::kFloat)).normal_(0.0, std, gen);
}

// max |a - b| / max(1, max |b|): absolute for values of order one, relative
// for the expert gradients, which sum many rows (there the two sides only
// differ in the order of that sum, one GEMM over both ranks' rows against one
// per rank).
double MaxDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1.0, b.abs().max().item<double>());
}

struct Weights {
  at::Tensor gate_ed, gate_up_efd, down_edf;
};

struct RankData {
  at::Tensor x_td, cotangent_td;
};

struct Result {
  at::Tensor y_td, dx_td, dgate_ed, dgate_up_efd, ddown_edf;  // expert grads: this rank's experts only
};

// y = Combine(Experts(Dispatch(x))) with `dispatcher`, and the gradients of
// sum(y * cotangent). `gate_up` / `down` hold the dispatcher's experts.
Result RunLayer(TokenDispatcher& dispatcher, const RankData& data, const at::Tensor& gate, const at::Tensor& gate_up,
                const at::Tensor& down) {
  at::Tensor x = data.x_td.clone().requires_grad_(true);
  at::Tensor g = gate.clone().requires_grad_(true);
  at::Tensor gu = gate_up.clone().requires_grad_(true);
  at::Tensor dn = down.clone().requires_grad_(true);
  Routing routing = Route(x, g, kTopK, /*norm_topk_prob=*/true);
  DispatchedTokens d = dispatcher.Dispatch(x, routing, kExperts);
  at::Tensor out_nd = GroupedExperts(d.tokens_nd, d.tokens_per_expert, gu, dn);
  at::Tensor y = dispatcher.Combine(out_nd, d);
  (y * data.cotangent_td).sum().backward();
  return {y.detach(), x.grad(), g.grad(), gu.grad(), dn.grad()};
}

void CompareWithLocal(const std::vector<int64_t>& tokens_per_rank) {
  const int ranks = static_cast<int>(tokens_per_rank.size());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  Weights w{Randn({kExperts, kHidden}, gen, 0.5), Randn({kExperts, 2 * kFfn, kHidden}, gen, 0.3),
            Randn({kExperts, kHidden, kFfn}, gen, 0.3)};
  std::vector<RankData> data;
  for (int64_t t : tokens_per_rank) data.push_back({Randn({t, kHidden}, gen, 1.0), Randn({t, kHidden}, gen, 1.0)});

  // Reference: each rank's tokens through the local dispatcher with every
  // expert; expert gradients summed over the ranks (what EP's backward does).
  std::vector<Result> reference;
  at::Tensor ref_dgate_up = at::zeros_like(w.gate_up_efd), ref_ddown = at::zeros_like(w.down_edf);
  for (int r = 0; r < ranks; ++r) {
    LocalTokenDispatcher local;
    reference.push_back(RunLayer(local, data[r], w.gate_ed, w.gate_up_efd, w.down_edf));
    ref_dgate_up += reference.back().dgate_up_efd;
    ref_ddown += reference.back().ddown_edf;
  }

  std::vector<Result> parallel(ranks);
  ParallelDims dims;
  dims.dp = ranks;
  dims.ep = ranks;
  ParallelOptions options;
  options.comm.timeout = std::chrono::seconds(20);
  absl::Status status = RunInProcessRanks(
      dims,
      [&](const ParallelState& state) -> absl::Status {
        AllToAllTokenDispatcher dispatcher(state.shared_group(RankGroupKind::kExpert));
        const int64_t first = dispatcher.FirstLocalExpert(kExperts), count = dispatcher.NumLocalExperts(kExperts);
        parallel[state.rank()] = RunLayer(dispatcher, data[state.rank()], w.gate_ed,
                                          w.gate_up_efd.narrow(0, first, count), w.down_edf.narrow(0, first, count));
        return absl::OkStatus();
      },
      options);
  ASSERT_TRUE(status.ok()) << status;

  const double tol = 1e-6;
  const int64_t local = kExperts / ranks;
  for (int r = 0; r < ranks; ++r) {
    if (tokens_per_rank[r] > 0) {
      EXPECT_LE(MaxDiff(parallel[r].y_td, reference[r].y_td), tol) << "rank " << r << " output";
      EXPECT_LE(MaxDiff(parallel[r].dx_td, reference[r].dx_td), tol) << "rank " << r << " d x";
    }
    EXPECT_LE(MaxDiff(parallel[r].dgate_ed, reference[r].dgate_ed), tol) << "rank " << r << " d router";
    EXPECT_LE(MaxDiff(parallel[r].dgate_up_efd, ref_dgate_up.narrow(0, r * local, local)), tol)
        << "rank " << r << " d gate_up";
    EXPECT_LE(MaxDiff(parallel[r].ddown_edf, ref_ddown.narrow(0, r * local, local)), tol) << "rank " << r << " d down";
  }
}

TEST(AllToAllTokenDispatcher, TwoRanksMatchTheLocalDispatcher) { CompareWithLocal({5, 9}); }

TEST(AllToAllTokenDispatcher, FourRanksMatchTheLocalDispatcher) { CompareWithLocal({6, 3, 8, 4}); }

TEST(AllToAllTokenDispatcher, ARankWithoutTokensStillTakesPart) { CompareWithLocal({0, 7}); }

}  // namespace
}  // namespace moerl
