#include "trainer/model/lm_loss.h"

#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "common/logging.h"

namespace moerl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class LinearCrossEntropyFunction : public torch::autograd::Function<LinearCrossEntropyFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden_nd, const at::Tensor& w_vd,
                            const at::Tensor& targets_n, int64_t chunk, bool with_grad) {
    const int64_t n = hidden_nd.size(0);
    at::Tensor h = hidden_nd.contiguous();
    at::Tensor w_t_dv = w_vd.t();
    at::Tensor loss_sum = at::zeros({}, h.options().dtype(at::kFloat));
    at::Tensor grad_h_nd, grad_w_vd, w32_vd;
    if (with_grad) {
      grad_h_nd = at::empty({n, h.size(1)}, h.options().dtype(at::kFloat));
      grad_w_vd = at::empty(w_vd.sizes(), w_vd.options().dtype(at::kFloat));
      w32_vd = w_vd.to(at::kFloat);
    }
    const double inv_n = 1.0 / static_cast<double>(std::max<int64_t>(n, 1));
    for (int64_t start = 0; start < n; start += chunk) {
      const int64_t c = std::min(chunk, n - start);
      at::Tensor h_cd = h.narrow(0, start, c);
      at::Tensor z_cv = at::mm(h_cd, w_t_dv).to(at::kFloat);
      at::Tensor y_c1 = targets_n.narrow(0, start, c).unsqueeze(1);
      at::Tensor logp_cv = at::log_softmax(z_cv, -1);
      loss_sum.sub_(logp_cv.gather(1, y_c1).sum());
      if (!with_grad) continue;
      // dz * N = softmax(z) - onehot(y), in place over the log-probs; the 1/N
      // rides on the GEMMs' alpha.
      at::Tensor dzn_cv = logp_cv.exp_();
      dzn_cv.scatter_add_(1, y_c1, at::full({c, 1}, -1.0, dzn_cv.options()));
      at::Tensor grad_h_cd = grad_h_nd.narrow(0, start, c);
      at::addmm_out(grad_h_cd, grad_h_cd, dzn_cv, w32_vd, /*beta=*/0.0, /*alpha=*/inv_n);
      grad_w_vd.addmm_(dzn_cv.t(), h_cd.to(at::kFloat), /*beta=*/start == 0 ? 0.0 : 1.0, /*alpha=*/inv_n);
    }
    if (with_grad && n == 0) grad_w_vd.zero_();
    if (with_grad) {
      ctx->saved_data["grad_h"] = grad_h_nd.to(h.scalar_type());
      ctx->saved_data["grad_w"] = grad_w_vd.to(w_vd.scalar_type());
    }
    return loss_sum.mul_(inv_n);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    MOERL_CHECK(ctx->saved_data.count("grad_h") == 1);  // forward ran with with_grad
    at::Tensor g = grads[0];
    at::Tensor grad_h = ctx->saved_data["grad_h"].toTensor();
    at::Tensor grad_w = ctx->saved_data["grad_w"].toTensor();
    if (!(g.numel() == 1 && g.item<double>() == 1.0)) {
      grad_h = grad_h * g.to(grad_h.scalar_type());
      grad_w = grad_w * g.to(grad_w.scalar_type());
    }
    return {grad_h, grad_w, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor LinearCrossEntropyMean(const at::Tensor& hidden_nd, const at::Tensor& lm_head_vd,
                                  const at::Tensor& targets_n, int64_t chunk_rows) {
  MOERL_CHECK(hidden_nd.dim() == 2 && lm_head_vd.dim() == 2 && hidden_nd.size(1) == lm_head_vd.size(1));
  MOERL_CHECK(targets_n.dim() == 1 && targets_n.size(0) == hidden_nd.size(0));
  const bool with_grad =
      at::GradMode::is_enabled() && (hidden_nd.requires_grad() || lm_head_vd.requires_grad());
  return LinearCrossEntropyFunction::apply(hidden_nd, lm_head_vd, targets_n, std::max<int64_t>(chunk_rows, 1),
                                           with_grad);
}

}  // namespace moerl
