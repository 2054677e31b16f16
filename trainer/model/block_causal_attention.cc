#include "trainer/model/block_causal_attention.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/baddbmm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "common/logging.h"

namespace moerl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void BmmInto(at::Tensor out, const at::Tensor& a, const at::Tensor& b) { at::bmm_out(out, a, b); }

// Rows of query block [q0, q0 + n) in the stacked layout: position-major,
// then the `rep` heads sharing one KV head.
struct Block {
  int64_t q0, n;
};

std::vector<Block> Blocks(int64_t len, int64_t block) {
  std::vector<Block> out;
  for (int64_t q0 = 0; q0 < len; q0 += block) out.push_back({q0, std::min(block, len - q0)});
  return out;
}

// Additive mask [n * rep, q0 + n]: 0 where key <= query position, else -inf.
at::Tensor BlockMask(const Block& b, int64_t rep, const at::TensorOptions& opts) {
  auto i64 = opts.dtype(at::kLong);
  at::Tensor pos_r1 = (at::arange(b.n * rep, i64).div(rep, "floor") + b.q0).unsqueeze(1);
  at::Tensor key_1m = at::arange(b.q0 + b.n, i64).unsqueeze(0);
  at::Tensor mask = at::zeros({b.n * rep, b.q0 + b.n}, opts);
  return mask.masked_fill_(key_1m > pos_r1, -std::numeric_limits<double>::infinity());
}

class BlockCausalAttentionFunction : public torch::autograd::Function<BlockCausalAttentionFunction> {
 public:
  // q_gld: [G, L * rep, D] (G = B * K, rows position-major); k_gld, v_gld: [G, L, D].
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q_grd, const at::Tensor& k_gld,
                            const at::Tensor& v_gld, double scale, int64_t rep, int64_t block) {
    const int64_t len = k_gld.size(1);
    // Without a gradient to compute (no_grad / inference), no block of
    // probabilities outlives its iteration.
    const bool needs_grad = q_grd.requires_grad() || k_gld.requires_grad() || v_gld.requires_grad();
    at::Tensor o_grd = at::empty_like(q_grd);
    std::vector<at::Tensor> probs;
    for (const Block& b : Blocks(len, block)) {
      const int64_t keys = b.q0 + b.n;
      at::Tensor q = q_grd.narrow(1, b.q0 * rep, b.n * rep);
      at::Tensor s_grm = at::baddbmm(BlockMask(b, rep, q_grd.options()), q, k_gld.narrow(1, 0, keys).transpose(1, 2),
                                     /*beta=*/1.0, /*alpha=*/scale);
      at::Tensor p_grm = at::softmax(s_grm, -1);
      BmmInto(o_grd.narrow(1, b.q0 * rep, b.n * rep), p_grm, v_gld.narrow(1, 0, keys));
      if (needs_grad) probs.push_back(p_grm);
    }
    if (!needs_grad) return o_grd;
    probs.push_back(q_grd);
    probs.push_back(k_gld);
    probs.push_back(v_gld);
    probs.push_back(o_grd);
    ctx->save_for_backward(probs);
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["rep"] = rep;
    ctx->saved_data["block"] = block;
    return o_grd;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    std::vector<at::Tensor> saved = ctx->get_saved_variables();
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t rep = ctx->saved_data["rep"].toInt();
    const int64_t block = ctx->saved_data["block"].toInt();
    const size_t nb = saved.size() - 4;
    const at::Tensor& q_grd = saved[nb];
    const at::Tensor& k_gld = saved[nb + 1];
    const at::Tensor& v_gld = saved[nb + 2];
    const at::Tensor& o_grd = saved[nb + 3];
    at::Tensor do_grd = grads[0].contiguous();
    at::Tensor delta_gr1 = (do_grd * o_grd).sum({-1}, /*keepdim=*/true);  // rowsum(dO * O)
    at::Tensor dq_grd = at::empty_like(q_grd);
    at::Tensor dk_gld = at::zeros_like(k_gld);
    at::Tensor dv_gld = at::zeros_like(v_gld);
    const std::vector<Block> blocks = Blocks(k_gld.size(1), block);
    MOERL_CHECK(blocks.size() == nb);
    for (size_t j = 0; j < nb; ++j) {
      const Block& b = blocks[j];
      const int64_t keys = b.q0 + b.n;
      const at::Tensor& p_grm = saved[j];
      at::Tensor q = q_grd.narrow(1, b.q0 * rep, b.n * rep);
      at::Tensor d_o = do_grd.narrow(1, b.q0 * rep, b.n * rep);
      at::Tensor k = k_gld.narrow(1, 0, keys), v = v_gld.narrow(1, 0, keys);
      // dS = P * (dO V^T - delta) * scale
      at::Tensor ds_grm = at::baddbmm(delta_gr1.narrow(1, b.q0 * rep, b.n * rep), d_o, v.transpose(1, 2),
                                      /*beta=*/-1.0, /*alpha=*/1.0);
      ds_grm.mul_(p_grm).mul_(scale);
      BmmInto(dq_grd.narrow(1, b.q0 * rep, b.n * rep), ds_grm, k);
      // bmm into fresh [G, keys, D] then add: baddbmm_ into the strided
      // narrow() view would fall back to one GEMM per batch entry.
      dk_gld.narrow(1, 0, keys).add_(at::bmm(ds_grm.transpose(1, 2), q));
      dv_gld.narrow(1, 0, keys).add_(at::bmm(p_grm.transpose(1, 2), d_o));
    }
    return {dq_grd, dk_gld, dv_gld, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor BlockCausalAttention(const at::Tensor& q_blhd, const at::Tensor& k_blkd, const at::Tensor& v_blkd,
                                double scale, int64_t block) {
  const int64_t b = q_blhd.size(0), len = q_blhd.size(1), heads = q_blhd.size(2), d = q_blhd.size(3);
  const int64_t kv = k_blkd.size(2);
  MOERL_CHECK(heads % kv == 0 && k_blkd.size(1) == len && v_blkd.sizes() == k_blkd.sizes());
  const int64_t rep = heads / kv;
  // [B, L, K*rep, D] -> [B, K, L, rep, D] -> [G, L*rep, D]
  at::Tensor q_grd = q_blhd.view({b, len, kv, rep, d}).permute({0, 2, 1, 3, 4}).reshape({b * kv, len * rep, d});
  at::Tensor k_gld = k_blkd.permute({0, 2, 1, 3}).reshape({b * kv, len, d});  // [B, L, K, D] -> [G, L, D]
  at::Tensor v_gld = v_blkd.permute({0, 2, 1, 3}).reshape({b * kv, len, d});
  at::Tensor o_grd = BlockCausalAttentionFunction::apply(q_grd, k_gld, v_gld, scale, rep, std::max<int64_t>(block, 1));
  // [G, L*rep, D] -> [B, K, L, rep, D] -> [B, L, K, rep, D] -> [B, L, H, D]
  return o_grd.view({b, kv, len, rep, d}).permute({0, 2, 1, 3, 4}).reshape({b, len, heads, d});
}

}  // namespace moerl
