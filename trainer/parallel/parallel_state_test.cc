#include "trainer/parallel/parallel_state.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>

#include "common/alloc_mode/alloc_mode.h"
#include "common/parallel_layout/parallel_layout.h"
#include "trainer/parallel/in_process_ranks.h"

namespace moerl {
namespace {

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

ModelConfig TinyMoe() {
  ModelConfig c;
  c.vocab_size = 128;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 32;
  c.num_experts = 8;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 32;
  return c;
}

ParallelOptions ShortTimeouts() {
  ParallelOptions o;
  o.comm.timeout = std::chrono::seconds(20);
  o.comm.heartbeat_interval = std::chrono::milliseconds(200);
  return o;
}

TEST(ReadRankEnvironment, TorchrunVariables) {
  auto env = ReadRankEnvironment(FakeEnv({{"RANK", "3"},
                                          {"WORLD_SIZE", "8"},
                                          {"LOCAL_RANK", "1"},
                                          {"LOCAL_WORLD_SIZE", "2"},
                                          {"MASTER_ADDR", "node7"},
                                          {"MASTER_PORT", "29400"},
                                          {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                          {"TORCHELASTIC_RESTART_COUNT", "2"}}),
                                 29500);
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->launcher, "torchrun");
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->world_size, 8);
  EXPECT_EQ(env->local_rank, 1);
  EXPECT_EQ(env->local_world_size, 2);
  EXPECT_EQ(env->master_addr, "node7");
  EXPECT_EQ(env->master_port, 29400);
  EXPECT_TRUE(env->agent_hosts_store);
  EXPECT_EQ(env->restart_count, 2);
}

TEST(ReadRankEnvironment, SlurmVariablesUseTheFirstHostAndTheConfiguredPort) {
  auto env = ReadRankEnvironment(FakeEnv({{"SLURM_PROCID", "5"},
                                          {"SLURM_NTASKS", "16"},
                                          {"SLURM_LOCALID", "5"},
                                          {"SLURM_TASKS_PER_NODE", "8(x2)"},
                                          {"SLURM_JOB_NODELIST", "gpu[007-008]"}}),
                                 29611);
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->launcher, "slurm");
  EXPECT_EQ(env->rank, 5);
  EXPECT_EQ(env->world_size, 16);
  EXPECT_EQ(env->local_world_size, 8);
  EXPECT_EQ(env->master_addr, "gpu007");
  EXPECT_EQ(env->master_port, 29611);
}

TEST(ReadRankEnvironment, NothingSetIsOneProcess) {
  auto env = ReadRankEnvironment(FakeEnv({}), 29500);
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->launcher, "none");
  EXPECT_EQ(env->world_size, 1);
}

TEST(ReadRankEnvironment, MalformedValuesNameTheVariable) {
  auto bad = ReadRankEnvironment(FakeEnv({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), 29500);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("RANK=\"x\""), std::string::npos) << bad.status();
  auto outside = ReadRankEnvironment(
      FakeEnv({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}), 29500);
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.status().message().find("rank 2 is not in a world of 2"), std::string::npos);
  auto no_addr = ReadRankEnvironment(FakeEnv({{"RANK", "0"}, {"WORLD_SIZE", "2"}}), 29500);
  ASSERT_FALSE(no_addr.ok());
}

TEST(FirstSlurmHost, HandlesRangesListsAndPlainNames) {
  EXPECT_EQ(*FirstSlurmHost("gpu[003-005,9],cpu1"), "gpu003");
  EXPECT_EQ(*FirstSlurmHost("node1,node2"), "node1");
  EXPECT_EQ(*FirstSlurmHost("a[1,4]-ib"), "a1-ib");
  EXPECT_FALSE(FirstSlurmHost("").ok());
  EXPECT_FALSE(FirstSlurmHost("gpu[").ok());
}

TEST(ValidateLayoutForModel, NamesTheKeyAndTheSizesThatFit) {
  ParallelDims dims;
  dims.dp = 3;
  dims.ep = 3;
  absl::Status s = ValidateLayoutForModel(dims, TinyMoe());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("ep=3 does not divide num_experts=8"), std::string::npos) << s;
  EXPECT_NE(s.message().find("1, 2, 4, 8"), std::string::npos) << s;
  ParallelDims tp;
  tp.tp = 4;
  s = ValidateLayoutForModel(tp, TinyMoe());
  EXPECT_NE(s.message().find("num_key_value_heads=2"), std::string::npos) << s;
  ParallelDims pp;
  pp.pp = 2;
  s = ValidateLayoutForModel(pp, TinyMoe());
  EXPECT_NE(s.message().find("num_hidden_layers=3"), std::string::npos) << s;
  ModelConfig dense = TinyMoe();
  dense.num_experts = 0;
  ParallelDims ep;
  ep.dp = 2;
  ep.ep = 2;
  EXPECT_FALSE(ValidateLayoutForModel(ep, dense).ok());
  EXPECT_TRUE(ValidateLayoutForModel(ep, TinyMoe()).ok());
}

TEST(ParallelStateFromEnvironment, RejectsAMismatchBeforeAnyCommunication) {
  auto mode = ParseAllocationMode("sglang:d2+megatron:(attn:d2|ffn:e2)");
  ASSERT_TRUE(mode.ok());
  // Four processes for a two-rank layout: no store exists at this address,
  // so reaching it would fail differently.
  auto state = ParallelState::FromEnvironment(
      *mode, TinyMoe(), ShortTimeouts(),
      FakeEnv({{"RANK", "0"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "1"}}));
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("trains on 2 rank(s) but the launcher (torchrun) started 4"),
            std::string::npos)
      << state.status();
  auto ep3 = ParseAllocationMode("megatron:d6e3");
  ASSERT_TRUE(ep3.ok());
  auto unfit = ParallelState::FromEnvironment(*ep3, TinyMoe(), ShortTimeouts(), FakeEnv({}));
  ASSERT_FALSE(unfit.ok());
  EXPECT_NE(unfit.status().message().find("num_experts=8"), std::string::npos) << unfit.status();
}

TEST(ParallelStateFromEnvironment, NoLauncherIsTheSingleProcessState) {
  auto mode = ParseAllocationMode("megatron:d1");
  ASSERT_TRUE(mode.ok());
  auto state = ParallelState::FromEnvironment(*mode, TinyMoe(), {}, FakeEnv({}));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->world_size(), 1);
  EXPECT_EQ(state->local_rank(), 0);
  at::Tensor t = at::full({3}, 2.0);
  state->group(RankGroupKind::kDataContext).AllReduceSum(t);
  EXPECT_EQ(t[0].item<float>(), 2.0f);
}

// Every kind's all-reduce sums exactly the members parallel_layout lists.
void CheckGroupsSumTheirMembers(const ParallelDims& dims) {
  absl::Status status = RunInProcessRanks(
      dims,
      [&](const ParallelState& state) -> absl::Status {
        for (RankGroupKind kind : AllRankGroupKinds()) {
          const ProcessGroup& group = state.group(kind);
          std::vector<int> expected = state.layout().GroupOf(kind, state.rank());
          if (kind == RankGroupKind::kEmbedding &&
              std::find(expected.begin(), expected.end(), state.rank()) == expected.end()) {
            expected = {state.rank()};
          }
          if (group.ranks() != expected) return absl::InternalError("members differ for " + group.name());
          at::Tensor t = at::full({2}, static_cast<double>(1 << state.rank()), at::kDouble);
          group.AllReduceSum(t);
          int64_t want = 0;
          for (int r : expected) want += int64_t{1} << r;
          if (t[1].item<double>() != static_cast<double>(want)) {
            return absl::InternalError("wrong sum on " + group.name());
          }
        }
        return absl::OkStatus();
      },
      ShortTimeouts());
  EXPECT_TRUE(status.ok()) << status;
}

TEST(ParallelState, GroupsOfAFoldedLayoutSumTheirMembers) {
  ParallelDims d2e2;
  d2e2.dp = 2;
  d2e2.ep = 2;
  CheckGroupsSumTheirMembers(d2e2);
  ParallelDims d4e2;
  d4e2.dp = 4;
  d4e2.ep = 2;
  CheckGroupsSumTheirMembers(d4e2);
}

TEST(ProcessGroup, AllToAllMovesUnevenRowsInMemberOrder) {
  ParallelDims dims;
  dims.dp = 2;
  dims.ep = 2;
  absl::Status status = RunInProcessRanks(
      dims,
      [&](const ParallelState& state) -> absl::Status {
        const ProcessGroup& ep = state.group(RankGroupKind::kExpert);
        const int me = ep.rank();
        // Member m sends (m + 1) * (j + 1) rows to member j, each row = 10 * m + j.
        std::vector<int64_t> send = {(me + 1) * 1, (me + 1) * 2};
        std::vector<int64_t> recv(2);
        for (int m = 0; m < 2; ++m) recv[m] = (m + 1) * (me + 1);
        std::vector<float> rows;
        for (int j = 0; j < 2; ++j) {
          for (int64_t i = 0; i < send[j]; ++i) rows.push_back(10.0f * me + j);
        }
        at::Tensor in = at::tensor(rows).reshape({-1, 1}).expand({-1, 3}).contiguous();
        at::Tensor out = ep.AllToAll(in, send, recv);
        int64_t row = 0;
        for (int m = 0; m < 2; ++m) {
          for (int64_t i = 0; i < recv[m]; ++i, ++row) {
            if (out[row][2].item<float>() != 10.0f * m + me) return absl::InternalError("row out of place");
          }
        }
        if (row != out.size(0)) return absl::InternalError("row count");
        return absl::OkStatus();
      },
      ShortTimeouts());
  EXPECT_TRUE(status.ok()) << status;
}

// The counters: bytes this rank sends under the bandwidth-optimal algorithm
// of each collective (process_groups.h), per kind's group.
TEST(ProcessGroup, CountsTheBytesEachCollectiveSends) {
  ParallelDims dims;
  dims.dp = 2;
  dims.ep = 2;
  std::vector<std::map<RankGroupKind, CommCounts>> counts(2);
  absl::Status status = RunInProcessRanks(
      dims,
      [&](const ParallelState& state) -> absl::Status {
        const auto before = state.CommBytes();
        const ProcessGroup& ep = state.group(RankGroupKind::kExpert);
        const int me = ep.rank();
        at::Tensor sum = at::full({10}, 1.0f);  // 40 bytes: ring all-reduce sends 2 * 1/2 * 40
        state.group(RankGroupKind::kDataContext).AllReduceSum(sum);
        // 3 rows of 2 floats to self, 1 + me to the other member.
        std::vector<int64_t> send = {me == 0 ? 3 : 2, me == 0 ? 1 : 3};
        std::vector<int64_t> recv = {me == 0 ? 3 : 1, me == 0 ? 2 : 3};
        (void)ep.AllToAll(at::zeros({send[0] + send[1], 2}), send, recv);
        (void)ep.AllToAllEqual(at::zeros({4, 2}), CommOp::kAllGather);  // 32 bytes, half leaves
        at::Tensor b = at::zeros({5});
        ep.Broadcast(b, 0);  // 20 bytes from member 0
        const auto after = state.CommBytes();
        for (const auto& [kind, c] : after) counts[state.rank()][kind] = c - before.at(kind);
        return absl::OkStatus();
      },
      ShortTimeouts());
  ASSERT_TRUE(status.ok()) << status;
  for (int r = 0; r < 2; ++r) {
    const CommCounts& dp = counts[r].at(RankGroupKind::kDataContext);
    const CommCounts& ep = counts[r].at(RankGroupKind::kExpert);
    EXPECT_EQ(dp[CommOp::kAllReduce], 40) << "rank " << r;
    EXPECT_EQ(dp.calls[static_cast<int>(CommOp::kAllReduce)], 1);
    EXPECT_EQ(ep[CommOp::kAllToAll], (r == 0 ? 1 : 2) * 8) << "rank " << r;
    EXPECT_EQ(ep[CommOp::kAllGather], 16) << "rank " << r;
    EXPECT_EQ(ep[CommOp::kBroadcast], r == 0 ? 20 : 0) << "rank " << r;
    EXPECT_EQ(ep.sent(), ep[CommOp::kAllToAll] + 16 + (r == 0 ? 20 : 0));
    // dp and dp-cp have the same members but count apart.
    EXPECT_EQ(counts[r].at(RankGroupKind::kData).sent(), 0);
  }
}

TEST(ProcessGroup, APeerThatLeavesMakesTheCollectiveFailNotHang) {
  ParallelDims dims;
  dims.dp = 2;
  std::string error;
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = RunInProcessRanks(
      dims,
      [&](const ParallelState& state) -> absl::Status {
        if (state.rank() == 1) return absl::OkStatus();  // leaves: its communicator closes
        at::Tensor t = at::full({4}, 1.0);
        try {
          state.group(RankGroupKind::kData).AllReduceSum(t);
        } catch (const CollectiveError& e) {
          error = e.what();
        }
        return absl::OkStatus();
      },
      ShortTimeouts());
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_NE(error.find("all_reduce on group dp [0,1] failed on global rank 0"), std::string::npos) << error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

}  // namespace
}  // namespace moerl

namespace moerl {
namespace {

TEST(Rendezvous, SilentRanksAreThoseWithoutAHeartbeat) {
  std::shared_ptr<Rendezvous> rendezvous = Rendezvous::InProcess();
  rendezvous->StartHeartbeat(0, std::chrono::milliseconds(50));
  rendezvous->StartHeartbeat(2, std::chrono::milliseconds(50));
  EXPECT_EQ(rendezvous->SilentRanks({0, 1, 2}), std::vector<int>({1}));
}

}  // namespace
}  // namespace moerl
