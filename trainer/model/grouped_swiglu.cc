#include "trainer/model/grouped_swiglu.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/silu_backward.h>
#include <torch/csrc/autograd/custom_function.h>

#include "common/logging.h"

namespace moerl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// out = a b, written into `out` (a view into a larger tensor; sizes match).
void MmInto(at::Tensor out, const at::Tensor& a, const at::Tensor& b) { at::mm_out(out, a, b); }

class GroupedSwiGluFunction : public torch::autograd::Function<GroupedSwiGluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_nd, const at::Tensor& gate_up_efd,
                            const at::Tensor& down_edf, const std::vector<int64_t>& counts) {
    const int64_t n = x_nd.size(0), d = x_nd.size(1), f = down_edf.size(2);
    at::Tensor x = x_nd.contiguous();
    at::Tensor gu_n2f = at::empty({n, 2 * f}, x.options());
    at::Tensor y_nd = at::empty({n, d}, x.options());
    int64_t start = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] == 0) continue;
      MmInto(gu_n2f.narrow(0, start, counts[e]), x.narrow(0, start, counts[e]), gate_up_efd[e].t());
      start += counts[e];
    }
    at::Tensor gate_nf = gu_n2f.narrow(1, 0, f), up_nf = gu_n2f.narrow(1, f, f);
    at::Tensor silu_nf = at::silu(gate_nf);
    at::Tensor a_nf = silu_nf * up_nf;
    start = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] == 0) continue;
      MmInto(y_nd.narrow(0, start, counts[e]), a_nf.narrow(0, start, counts[e]), down_edf[e].t());
      start += counts[e];
    }
    ctx->save_for_backward({x, gate_up_efd, down_edf, gu_n2f, silu_nf, a_nf});
    ctx->saved_data["counts"] = c10::IntArrayRef(counts);
    return y_nd;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& gate_up_efd = saved[1];
    const at::Tensor& down_edf = saved[2];
    const at::Tensor& gu_n2f = saved[3];
    const at::Tensor& silu_nf = saved[4];
    const at::Tensor& a_nf = saved[5];
    const std::vector<int64_t> counts = ctx->saved_data["counts"].toIntVector();
    at::Tensor dy_nd = grads[0].contiguous();
    const int64_t n = x.size(0), f = down_edf.size(2);
    // The GEMMs overwrite each used expert's slice; experts without rows get
    // zeros.
    at::Tensor d_gate_up = at::empty(gate_up_efd.sizes(), gate_up_efd.options());
    at::Tensor d_down = at::empty(down_edf.sizes(), down_edf.options());
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] != 0) continue;
      d_gate_up[e].zero_();
      d_down[e].zero_();
    }
    at::Tensor da_nf = at::empty({n, f}, x.options());
    int64_t start = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] == 0) continue;
      at::Tensor dy = dy_nd.narrow(0, start, counts[e]);
      MmInto(da_nf.narrow(0, start, counts[e]), dy, down_edf[e]);
      MmInto(d_down[e], dy.t(), a_nf.narrow(0, start, counts[e]));
      start += counts[e];
    }
    at::Tensor gate_nf = gu_n2f.narrow(1, 0, f), up_nf = gu_n2f.narrow(1, f, f);
    at::Tensor dgu_n2f = at::empty({n, 2 * f}, x.options());
    // d gate = silu'(g) * (da * u); d up = silu(g) * da.
    at::Tensor dgate_nf = dgu_n2f.narrow(1, 0, f), dup_nf = dgu_n2f.narrow(1, f, f);
    at::silu_backward_out(dgate_nf, da_nf * up_nf, gate_nf);
    at::mul_out(dup_nf, silu_nf, da_nf);
    at::Tensor dx_nd = at::empty_like(x);
    start = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] == 0) continue;
      at::Tensor dgu = dgu_n2f.narrow(0, start, counts[e]);
      MmInto(dx_nd.narrow(0, start, counts[e]), dgu, gate_up_efd[e]);
      MmInto(d_gate_up[e], dgu.t(), x.narrow(0, start, counts[e]));
      start += counts[e];
    }
    return {dx_nd, d_gate_up, d_down, at::Tensor()};
  }
};

}  // namespace

at::Tensor GroupedSwiGlu(const at::Tensor& tokens_nd, const std::vector<int64_t>& tokens_per_expert,
                         const at::Tensor& gate_up_efd, const at::Tensor& down_edf) {
  MOERL_CHECK(static_cast<int64_t>(tokens_per_expert.size()) == gate_up_efd.size(0));
  int64_t rows = 0;
  for (int64_t c : tokens_per_expert) rows += c;
  MOERL_CHECK(rows == tokens_nd.size(0));
  return GroupedSwiGluFunction::apply(tokens_nd, gate_up_efd, down_edf, tokens_per_expert);
}

}  // namespace moerl
