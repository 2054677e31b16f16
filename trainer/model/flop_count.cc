#include "trainer/model/flop_count.h"

#include <ATen/ops/randn.h>

#include <algorithm>

#include "common/bench_clock.h"

namespace moerl {

double ForwardMatmulFlops(const ModelConfig& c, const std::vector<int64_t>& lengths, int64_t scored_rows) {
  const double h = static_cast<double>(c.hidden_size);
  const double q = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  double tokens = 0, causal_pairs = 0;  // pairs (query, key <= query) within a sequence
  for (int64_t len : lengths) {
    const double l = static_cast<double>(len);
    tokens += l;
    causal_pairs += l * (l + 1) / 2;
  }
  double total = 2 * h * static_cast<double>(c.vocab_size) * static_cast<double>(scored_rows);
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    total += tokens * 2 * (h * q + 2 * h * kv + q * h);  // q, k, v, o projections
    total += causal_pairs * 2 * 2 * q;                   // QK^T and PV
    if (c.IsMoeLayer(layer)) {
      total += tokens * (2 * h * static_cast<double>(c.num_experts) +  // router
                         static_cast<double>(c.num_experts_per_tok) * 6 * h *
                             static_cast<double>(c.moe_intermediate_size));  // gate, up, down
    } else {
      total += tokens * 6 * h * static_cast<double>(c.intermediate_size);
    }
  }
  return total;
}

double MeasureGemmFlops(int64_t n, double* cpu_flops) {
  at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  a.mm(b);  // warm-up
  const int reps = 5;
  const double start = WallSeconds(), cpu_start = ProcessCpuSeconds();
  for (int i = 0; i < reps; ++i) a.mm(b);
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) * reps;
  if (cpu_flops != nullptr) *cpu_flops = std::max(*cpu_flops, flops / (ProcessCpuSeconds() - cpu_start));
  return flops / (WallSeconds() - start);
}

}  // namespace moerl
