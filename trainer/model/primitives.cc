#include "trainer/model/primitives.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/silu.h>
#include <torch/csrc/autograd/custom_function.h>

namespace moerl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// fp32 RMSNorm with a fused backward. Forward is the same ops as the
// composite below (bit-identical); backward, with xhat = x * rstd:
//   dw = sum_rows(dy * xhat),  dx = rstd * (dy w - xhat * mean(dy w * xhat)).
class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    const int64_t dim = x.size(-1);
    at::Tensor x_rd = x.reshape({-1, dim});
    at::Tensor rstd_r1 = (x_rd.pow(2).mean({-1}, /*keepdim=*/true) + eps).rsqrt();
    at::Tensor xhat_rd = x_rd * rstd_r1;
    ctx->save_for_backward({xhat_rd, rstd_r1, weight});
    return (weight * xhat_rd).view(x.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& xhat_rd = saved[0];
    const at::Tensor& rstd_r1 = saved[1];
    const at::Tensor& weight = saved[2];
    const at::Tensor& dy = grads[0];
    at::Tensor dy_rd = dy.reshape(xhat_rd.sizes());
    at::Tensor dw = (dy_rd * xhat_rd).sum(0);
    at::Tensor dxhat_rd = dy_rd * weight;
    at::Tensor mean_r1 = (dxhat_rd * xhat_rd).mean({-1}, /*keepdim=*/true);
    at::Tensor dx_rd = dxhat_rd.sub_(xhat_rd * mean_r1).mul_(rstd_r1);
    return {dx_rd.view(dy.sizes()), dw, at::Tensor()};
  }
};

}  // namespace

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const auto input_dtype = x.scalar_type();
  if (input_dtype == at::kFloat && weight.scalar_type() == at::kFloat) {
    return RmsNormFunction::apply(x, weight, eps);
  }
  at::Tensor x32 = x.to(at::kFloat);
  at::Tensor variance = x32.pow(2).mean({-1}, /*keepdim=*/true);
  at::Tensor normed = x32 * (variance + eps).rsqrt();
  return weight * normed.to(input_dtype);
}

RopeTables MakeRopeTables(const at::Tensor& positions_t, int64_t head_dim, double theta,
                          c10::ScalarType dtype) {
  // inv_freq = 1 / theta^(arange(0, d, 2) / d), in fp32 as transformers does.
  at::Tensor exponent = at::arange(0, head_dim, 2, positions_t.options().dtype(at::kFloat)) /
                        static_cast<double>(head_dim);
  at::Tensor inv_freq = at::pow(theta, exponent).reciprocal();       // [d/2]
  at::Tensor angle = positions_t.to(at::kFloat).unsqueeze(-1) * inv_freq;  // [T, d/2]
  at::Tensor emb = at::cat({angle, angle}, -1);                       // [T, d]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor ApplyRope(const at::Tensor& x_thd, const RopeTables& rope) {
  const int64_t half = x_thd.size(-1) / 2;
  at::Tensor x1 = x_thd.narrow(-1, 0, half);
  at::Tensor x2 = x_thd.narrow(-1, half, half);
  at::Tensor rotated = at::cat({x2.neg(), x1}, -1);
  at::Tensor cos_t1d = rope.cos_td.unsqueeze(1);  // broadcast over heads
  at::Tensor sin_t1d = rope.sin_td.unsqueeze(1);
  return x_thd * cos_t1d + rotated * sin_t1d;
}

at::Tensor SwiGlu(const at::Tensor& x_td, const at::Tensor& gate_fd, const at::Tensor& up_fd,
                  const at::Tensor& down_df) {
  return at::linear(at::silu(at::linear(x_td, gate_fd)) * at::linear(x_td, up_fd), down_df);
}

at::Tensor SwiGluFused(const at::Tensor& x_td, const at::Tensor& gate_up_2fd, const at::Tensor& down_df) {
  std::vector<at::Tensor> gate_up = at::linear(x_td, gate_up_2fd).chunk(2, -1);  // 2 x [t, f]
  return at::linear(at::silu(gate_up[0]) * gate_up[1], down_df);
}

}  // namespace moerl
