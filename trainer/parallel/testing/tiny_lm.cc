#include "trainer/parallel/testing/tiny_lm.h"

#include <ATen/ops/tensor.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "trainer/model/lm_loss.h"

namespace moerl {

ModelConfig TinyMoeConfig() {
  const char* path = "trainer/model/testdata/moe/config.json";
  absl::StatusOr<ModelConfig> config = ModelConfig::FromFile(path);
  if (!config.ok()) {
    std::fprintf(stderr, "TinyMoeConfig: %s\n", std::string(config.status().message()).c_str());
    std::abort();
  }
  config->router_z_loss_coef = 1e-3;
  return *config;
}

std::vector<std::vector<int64_t>> LcgSequences(int64_t vocab, const std::vector<int64_t>& lengths) {
  std::vector<std::vector<int64_t>> seqs;
  uint64_t s = 12345;
  for (int64_t len : lengths) {
    std::vector<int64_t> seq;
    for (int64_t i = 0; i < len; ++i) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      seq.push_back(static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(vocab)));
    }
    seqs.push_back(seq);
  }
  return seqs;
}

int64_t NextTokenRows(const std::vector<std::vector<int64_t>>& seqs) {
  int64_t n = 0;
  for (const auto& s : seqs) n += static_cast<int64_t>(s.size()) - 1;
  return n;
}

void NextTokenTargets(const ModelInput& in, at::Tensor* rows_n, at::Tensor* targets_n) {
  std::vector<int64_t> rows, targets;
  const at::Tensor tokens = in.tokens_t.contiguous();
  const int64_t* tok = tokens.data_ptr<int64_t>();
  int64_t start = 0;
  for (int64_t len : in.layout.seq_lens) {
    for (int64_t i = 0; i + 1 < len; ++i) {
      rows.push_back(start + i);
      targets.push_back(tok[start + i + 1]);
    }
    start += len;
  }
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  *rows_n = at::tensor(rows, i64);
  *targets_n = at::tensor(targets, i64);
}

at::Tensor CrossEntropyShare(Qwen3Model& model, const ModelInput& in, const at::Tensor& hidden_td,
                             int64_t global_rows) {
  at::Tensor rows, targets;
  NextTokenTargets(in, &rows, &targets);
  at::Tensor ce = LinearCrossEntropyMean(hidden_td.index_select(0, rows), model.lm_head_weight(), targets);
  return ce * (static_cast<double>(rows.numel()) / static_cast<double>(global_rows));
}

}  // namespace moerl
