// Causal attention over packed sequences, with an optional KV cache.
//
// A micro-batch is T tokens laid end to end: segment i holds seq_lens[i]
// consecutive tokens of one sequence. A token attends only to earlier tokens
// of its own segment (plus, with a cache, that sequence's cached past), so no
// attention crosses a sequence boundary.
//
//   scores = (q k^T) / sqrt(d), causal, softmax, times v; GQA: query head j
//   reads KV head j / (heads / kv_heads) (transformers' repeat_kv).
//
// Kernels: without a cache in fp32 (training, scoring) the GEMM-based
// BlockCausalAttention (block_causal_attention.h), one batched call when all
// segments have the same length, else one call per segment; otherwise
// (bf16, prefill and decode with a cache) scaled_dot_product_attention.
//
// Shape letters: t tokens, h query heads, k KV heads, d head_dim, s cache
// slots, m cached positions.
//
//   PackedLayout layout{{5, 7}};                       // two sequences, T = 12
//   at::Tensor out_thd = PackedCausalAttention(q_thd, k_tkd, v_tkd, layout, nullptr, 0);
//
// Threading: thread-compatible; a KvCache belongs to one caller.
#ifndef MOERL_TRAINER_MODEL_ATTENTION_H_
#define MOERL_TRAINER_MODEL_ATTENTION_H_

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace moerl {

struct PackedLayout {
  std::vector<int64_t> seq_lens;  // tokens per segment, sum = T
};

// Per-layer key/value storage for generation: slot s holds one sequence.
struct KvCache {
  std::vector<at::Tensor> k_skmd;  // per layer [slots, kv_heads, max_len, head_dim]
  std::vector<at::Tensor> v_skmd;
  std::vector<int64_t> lengths;    // cached positions per slot
  // Segment i of the current batch appends to slot slot_of_segment[i].
  std::vector<int64_t> slot_of_segment;

  static KvCache Allocate(int64_t layers, int64_t slots, int64_t kv_heads, int64_t max_len,
                          int64_t head_dim, c10::ScalarType dtype);
  int64_t max_len() const { return k_skmd.empty() ? 0 : k_skmd[0].size(2); }
};

// q_thd [T, h, d], k_tkd / v_tkd [T, kv_heads, d] (already normed + RoPE'd).
// With cache != nullptr the new keys/values are written at each slot's
// current length (lengths are NOT advanced: the caller does that once per
// forward, after the last layer). Returns [T, h, d].
at::Tensor PackedCausalAttention(const at::Tensor& q_thd, const at::Tensor& k_tkd,
                                 const at::Tensor& v_tkd, const PackedLayout& layout,
                                 KvCache* cache, int64_t layer);

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_ATTENTION_H_
