#include "trainer/model/attention.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/split_with_sizes.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <cmath>

#include "common/logging.h"
#include "trainer/model/block_causal_attention.h"

namespace moerl {
namespace {

// [n, kv, d] -> [h, n, d] with each KV head repeated `rep` times in a row.
at::Tensor ExpandKv(const at::Tensor& x_nkd, int64_t rep) {
  at::Tensor x_knd = x_nkd.transpose(0, 1);
  if (rep == 1) return x_knd;
  return x_knd.repeat_interleave(rep, 0);
}

// Causal attention of n new queries over m = past + n keys of one sequence.
at::Tensor AttendOne(const at::Tensor& q_nhd, const at::Tensor& k_mkd, const at::Tensor& v_mkd,
                     int64_t past) {
  const int64_t n = q_nhd.size(0), m = k_mkd.size(0), heads = q_nhd.size(1);
  const int64_t rep = heads / k_mkd.size(1);
  at::Tensor q_hnd = q_nhd.transpose(0, 1);
  at::Tensor k_hmd = ExpandKv(k_mkd, rep);
  at::Tensor v_hmd = ExpandKv(v_mkd, rep);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q_nhd.size(2)));
  at::Tensor out_hnd;
  if (past == 0) {
    out_hnd = at::scaled_dot_product_attention(q_hnd, k_hmd, v_hmd, {}, 0.0, /*is_causal=*/true, scale);
  } else if (n == 1) {
    out_hnd = at::scaled_dot_product_attention(q_hnd, k_hmd, v_hmd, {}, 0.0, false, scale);
  } else {
    // Query i (absolute position past + i) sees keys 0..past + i.
    at::Tensor rows_n1 = at::arange(n, q_nhd.options().dtype(at::kLong)).unsqueeze(1) + past;
    at::Tensor cols_1m = at::arange(m, q_nhd.options().dtype(at::kLong)).unsqueeze(0);
    at::Tensor allowed_nm = cols_1m <= rows_n1;
    out_hnd = at::scaled_dot_product_attention(q_hnd, k_hmd, v_hmd, allowed_nm, 0.0, false, scale);
  }
  return out_hnd.transpose(0, 1);  // [n, h, d]
}

// One new token per sequence (a decode step): write each token's key/value at
// its slot's length, then one batched attention call over the slots' caches,
// masking each row to its own length.
at::Tensor DecodeStep(const at::Tensor& q_bhd, const at::Tensor& k_bkd, const at::Tensor& v_bkd,
                      KvCache* cache, int64_t layer) {
  const int64_t batch = q_bhd.size(0), heads = q_bhd.size(1), d = q_bhd.size(2);
  const int64_t rep = heads / k_bkd.size(1);
  std::vector<int64_t> visible;  // keys each row sees: its past + itself
  int64_t longest = 0;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t slot = cache->slot_of_segment[i];
    const int64_t past = cache->lengths[slot];
    MOERL_CHECK(past + 1 <= cache->max_len());
    cache->k_skmd[layer][slot].narrow(1, past, 1).copy_(k_bkd[i].unsqueeze(1));
    cache->v_skmd[layer][slot].narrow(1, past, 1).copy_(v_bkd[i].unsqueeze(1));
    visible.push_back(past + 1);
    longest = std::max(longest, past + 1);
  }
  const auto i64 = q_bhd.options().dtype(at::kLong);
  at::Tensor slots_b = at::tensor(cache->slot_of_segment, i64);
  at::Tensor k_bkmd = cache->k_skmd[layer].narrow(2, 0, longest).index_select(0, slots_b);
  at::Tensor v_bkmd = cache->v_skmd[layer].narrow(2, 0, longest).index_select(0, slots_b);
  if (rep > 1) {
    k_bkmd = k_bkmd.repeat_interleave(rep, 1);
    v_bkmd = v_bkmd.repeat_interleave(rep, 1);
  }
  at::Tensor allowed_b11m = at::arange(longest, i64).view({1, 1, 1, longest}) <
                            at::tensor(visible, i64).view({batch, 1, 1, 1});
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor out_bh1d =
      at::scaled_dot_product_attention(q_bhd.unsqueeze(2), k_bkmd, v_bkmd, allowed_b11m, 0.0, false, scale);
  return out_bh1d.squeeze(2);  // [B, h, d]
}

}  // namespace

KvCache KvCache::Allocate(int64_t layers, int64_t slots, int64_t kv_heads, int64_t max_len,
                          int64_t head_dim, c10::ScalarType dtype) {
  KvCache cache;
  for (int64_t l = 0; l < layers; ++l) {
    cache.k_skmd.push_back(at::zeros({slots, kv_heads, max_len, head_dim}, at::TensorOptions().dtype(dtype)));
    cache.v_skmd.push_back(at::zeros({slots, kv_heads, max_len, head_dim}, at::TensorOptions().dtype(dtype)));
  }
  cache.lengths.assign(slots, 0);
  return cache;
}

at::Tensor PackedCausalAttention(const at::Tensor& q_thd, const at::Tensor& k_tkd,
                                 const at::Tensor& v_tkd, const PackedLayout& layout,
                                 KvCache* cache, int64_t layer) {
  const int64_t segments = static_cast<int64_t>(layout.seq_lens.size());
  const int64_t total = q_thd.size(0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q_thd.size(2)));
  if (cache == nullptr && q_thd.scalar_type() == at::kFloat) {
    // Training / scoring in fp32: GEMM-based block-causal attention
    // (block_causal_attention.h), batched over segments of equal length.
    bool equal_lengths = segments > 0;
    for (int64_t len : layout.seq_lens) equal_lengths &= len == layout.seq_lens[0];
    const int64_t heads = q_thd.size(1), kv = k_tkd.size(1), d = q_thd.size(2);
    if (equal_lengths) {
      const int64_t len = layout.seq_lens[0];
      at::Tensor out_blhd =
          BlockCausalAttention(q_thd.reshape({segments, len, heads, d}), k_tkd.reshape({segments, len, kv, d}),
                               v_tkd.reshape({segments, len, kv, d}), scale);
      return out_blhd.reshape({total, heads, d});  // [B, L, h, d] -> [T, h, d]
    }
    std::vector<at::Tensor> outs;
    int64_t start = 0;
    for (int64_t len : layout.seq_lens) {
      outs.push_back(BlockCausalAttention(q_thd.narrow(0, start, len).unsqueeze(0),
                                          k_tkd.narrow(0, start, len).unsqueeze(0),
                                          v_tkd.narrow(0, start, len).unsqueeze(0), scale)
                         .squeeze(0));
      start += len;
    }
    return outs.size() == 1 ? outs[0] : at::cat(outs, 0);
  }
  bool equal_lengths = cache == nullptr && segments > 0;
  for (int64_t len : layout.seq_lens) equal_lengths &= len == layout.seq_lens[0];
  if (equal_lengths && segments > 1) {
    // All segments the same length: one batched call [B, h, L, d].
    const int64_t len = layout.seq_lens[0];
    const int64_t heads = q_thd.size(1), kv = k_tkd.size(1), d = q_thd.size(2);
    const int64_t rep = heads / kv;
    at::Tensor q_bhld = q_thd.reshape({segments, len, heads, d}).transpose(1, 2);
    at::Tensor k_bkld = k_tkd.reshape({segments, len, kv, d}).transpose(1, 2);
    at::Tensor v_bkld = v_tkd.reshape({segments, len, kv, d}).transpose(1, 2);
    if (rep > 1) {
      k_bkld = k_bkld.repeat_interleave(rep, 1);
      v_bkld = v_bkld.repeat_interleave(rep, 1);
    }
    at::Tensor out = at::scaled_dot_product_attention(q_bhld, k_bkld, v_bkld, {}, 0.0, true, scale);
    return out.transpose(1, 2).reshape({total, heads, d});  // [B, L, h, d] -> [T, h, d]
  }
  bool single_tokens = cache != nullptr && segments > 1;
  for (int64_t len : layout.seq_lens) single_tokens &= len == 1;
  if (single_tokens) return DecodeStep(q_thd, k_tkd, v_tkd, cache, layer);
  std::vector<at::Tensor> q_parts = at::split_with_sizes(q_thd, layout.seq_lens, 0);
  std::vector<at::Tensor> k_parts = at::split_with_sizes(k_tkd, layout.seq_lens, 0);
  std::vector<at::Tensor> v_parts = at::split_with_sizes(v_tkd, layout.seq_lens, 0);
  std::vector<at::Tensor> outs;
  outs.reserve(segments);
  for (int64_t i = 0; i < segments; ++i) {
    if (cache == nullptr) {
      outs.push_back(AttendOne(q_parts[i], k_parts[i], v_parts[i], 0));
      continue;
    }
    const int64_t slot = cache->slot_of_segment[i];
    const int64_t past = cache->lengths[slot];
    const int64_t n = layout.seq_lens[i];
    MOERL_CHECK(past + n <= cache->max_len());
    at::Tensor k_kmd = cache->k_skmd[layer][slot];
    at::Tensor v_kmd = cache->v_skmd[layer][slot];
    k_kmd.narrow(1, past, n).copy_(k_parts[i].transpose(0, 1));
    v_kmd.narrow(1, past, n).copy_(v_parts[i].transpose(0, 1));
    at::Tensor k_mkd = k_kmd.narrow(1, 0, past + n).transpose(0, 1);
    at::Tensor v_mkd = v_kmd.narrow(1, 0, past + n).transpose(0, 1);
    outs.push_back(AttendOne(q_parts[i], k_mkd, v_mkd, past));
  }
  return segments == 1 ? outs[0] : at::cat(outs, 0);
}

}  // namespace moerl
