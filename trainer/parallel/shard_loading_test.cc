// Loading an HF checkpoint under a parallel layout reads only this rank's
// part: for tp2 (`d1t2`), ep2 (`(attn:d2|ffn:e2)`) and expert tensor
// parallel (`(attn:t2|ffn:t2)`) on the tiny MoE, every rank's bytes read
// (counted by the loader) are exactly the bytes of what it holds, the
// sharded tensors' share is 1/2 of their bytes in the file, and the loaded
// parts equal the slices of a one-process load bit for bit. A truncated
// file is an error naming the file and the byte offset.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/alloc_mode/alloc_mode.h"
#include "common/safetensors/checkpoint_dir.h"
#include "common/status.h"
#include "trainer/model/hf_weights.h"
#include "trainer/model/model.h"
#include "trainer/parallel/in_process_ranks.h"
#include "trainer/parallel/parallelize.h"
#include "trainer/parallel/testing/rank_testing.h"
#include "trainer/parallel/testing/tiny_lm.h"

namespace moerl {
namespace {

std::string TestDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp != nullptr ? tmp : "/tmp") + "/" + name;
}

// The tiny MoE saved whole in fp32; its tensors by HF name.
std::map<std::string, at::Tensor> SaveFullCheckpoint(const std::string& dir) {
  auto full = std::make_shared<Qwen3Model>(TinyMoeConfig());
  full->InitializeWeights(5);
  EXPECT_TRUE(SaveHfCheckpoint(*full, dir, at::kFloat, 1ull << 30).ok());
  std::map<std::string, at::Tensor> out;
  for (const HfBinding& b : HfBindings(*full)) out[b.hf_name] = b.view.detach().clone();
  return out;
}

bool HoldsAllExperts(const Qwen3Model& model) {
  for (const auto& layer : model.layers()) {
    if (layer->moe && !layer->moe->experts->holds_all()) return false;
  }
  return true;
}

class ShardLoading : public ::testing::TestWithParam<std::string> {};

TEST_P(ShardLoading, EachRankReadsOnlyTheBytesOfItsPart) {
  const std::string layout = GetParam();
  const std::string dir = TestDir("ckpt");
  const std::map<std::string, at::Tensor> whole = SaveFullCheckpoint(dir);
  uint64_t file_bytes = 0;
  for (const auto& [name, t] : whole) file_bytes += t.nbytes();
  const ParallelDims dims = LayoutDims(layout);
  std::vector<uint64_t> read(8, 0), sharded_read(8, 0), sharded_full(8, 0);
  absl::Status status = RunInProcessRanks(
      dims,
      [&](const ParallelState& state) -> absl::Status {
        const std::string rank = absl::StrCat("rank ", state.rank(), ": ");
        auto model = std::make_shared<Qwen3Model>(TinyMoeConfig());
        MOERL_RETURN_IF_ERROR(ParallelizeQwen3(*model, state));
        HfLoadStats stats;
        MOERL_RETURN_IF_ERROR(LoadHfWeights(dir, model.get(), &stats));
        const bool expert_range = !HoldsAllExperts(*model);
        uint64_t held = 0, sharded = 0, whole_read = 0;
        for (const HfBinding& b : HfBindings(*model)) {
          const at::Tensor& w = whole.at(b.hf_name);
          const at::Tensor want = b.slice_dim >= 0 ? w.narrow(b.slice_dim, b.slice_start, b.view.size(b.slice_dim)) : w;
          if (!b.view.equal(want)) return absl::InternalError(rank + b.hf_name + " is not its slice of the full load");
          held += b.view.nbytes();
          if (b.slice_dim >= 0 || (expert_range && absl::StrContains(b.hf_name, ".mlp.experts."))) {
            sharded += b.view.nbytes();
          } else {
            whole_read += b.view.nbytes();
          }
        }
        if (stats.bytes_read != held) {
          return absl::InternalError(absl::StrCat(rank, "read ", stats.bytes_read, " bytes, holds ", held));
        }
        read[state.rank()] = stats.bytes_read;
        sharded_read[state.rank()] = sharded;
        sharded_full[state.rank()] = file_bytes - whole_read;  // the sharded tensors' bytes in the file
        return absl::OkStatus();
      },
      TestRankOptions());
  ASSERT_TRUE(status.ok()) << status;
  for (int r = 0; r < dims.WorldSize(); ++r) {
    EXPECT_GT(sharded_read[r], 0u) << "rank " << r << " holds no sharded tensor";
    EXPECT_EQ(2 * sharded_read[r], sharded_full[r]) << "rank " << r << " reads 1/2 of the sharded tensors";
    EXPECT_LT(read[r], file_bytes) << "rank " << r;
    std::printf("%s rank %d: read %llu of %llu bytes (sharded tensors %llu of %llu)\n", layout.c_str(), r,
                static_cast<unsigned long long>(read[r]), static_cast<unsigned long long>(file_bytes),
                static_cast<unsigned long long>(sharded_read[r]), static_cast<unsigned long long>(sharded_full[r]));
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, ShardLoading,
                         ::testing::Values("megatron:d1t2", "megatron:(attn:d2|ffn:e2)",
                                           "megatron:(attn:t2|ffn:t2)"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(ShardLoadingErrors, ATruncatedFileNamesTheFileAndTheByteOffset) {
  const std::string dir = TestDir("short");
  SaveFullCheckpoint(dir);
  const std::string file = dir + "/model.safetensors";
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 100);
  std::vector<absl::Status> statuses(2);
  (void)RunInProcessRanks(
      LayoutDims("megatron:d1t2"),
      [&](const ParallelState& state) {
        auto model = std::make_shared<Qwen3Model>(TinyMoeConfig());
        absl::Status st = ParallelizeQwen3(*model, state);
        if (st.ok()) st = LoadHfWeights(dir, model.get());
        statuses[state.rank()] = st;
        return absl::OkStatus();
      },
      TestRankOptions());
  for (const absl::Status& st : statuses) {
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_NE(std::string(st.message()).find(file), std::string::npos) << st;
    EXPECT_NE(std::string(st.message()).find("offset"), std::string::npos) << st;
  }
  std::printf("truncated: %s\n", statuses[0].ToString().c_str());
}

}  // namespace
}  // namespace moerl
