#include "trainer/model/logprobs.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include "absl/strings/str_cat.h"
#include "trainer/model/model.h"

namespace moerl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct ChunkStats {
  at::Tensor z_cv;    // fp32 scaled logits
  at::Tensor lse_c;   // logsumexp
};

ChunkStats ChunkLogits(const at::Tensor& h_cd, const at::Tensor& w_vd, double temperature) {
  ChunkStats s;
  s.z_cv = at::linear(h_cd, w_vd).to(at::kFloat);
  if (temperature != 1.0) s.z_cv = s.z_cv / temperature;
  s.lse_c = at::logsumexp(s.z_cv, {-1});
  return s;
}

class ChunkedLogProbFunction : public torch::autograd::Function<ChunkedLogProbFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden_nd, const at::Tensor& w_vd,
                               const at::Tensor& targets_n, double temperature, bool with_entropy,
                               int64_t chunk) {
    const int64_t n = hidden_nd.size(0);
    at::Tensor logp_n = at::empty({n}, hidden_nd.options().dtype(at::kFloat));
    at::Tensor ent_n = at::empty({with_entropy ? n : 0}, hidden_nd.options().dtype(at::kFloat));
    for (int64_t start = 0; start < n; start += chunk) {
      const int64_t c = std::min(chunk, n - start);
      ChunkStats s = ChunkLogits(hidden_nd.narrow(0, start, c), w_vd, temperature);
      at::Tensor y_c1 = targets_n.narrow(0, start, c).unsqueeze(1);
      logp_n.narrow(0, start, c).copy_(s.z_cv.gather(1, y_c1).squeeze(1) - s.lse_c);
      if (with_entropy) {
        at::Tensor p_cv = (s.z_cv - s.lse_c.unsqueeze(1)).exp_();
        ent_n.narrow(0, start, c).copy_(s.lse_c - (p_cv * s.z_cv).sum({-1}));
      }
    }
    ctx->save_for_backward({hidden_nd, w_vd, targets_n});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk"] = chunk;
    // An output that reaches no loss gets an undefined gradient instead of
    // a zero-filled one: the GRPO loss reads the entropy for its statistics
    // only, and its gradient terms cost five passes over [c, V] per chunk.
    ctx->set_materialize_grads(false);
    return {logp_n, ent_n};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& hidden_nd = saved[0];
    const at::Tensor& w_vd = saved[1];
    const at::Tensor& targets_n = saved[2];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::Tensor& g_logp_n = grads[0];
    const at::Tensor& g_ent_n = grads[1];
    const bool has_logp = g_logp_n.defined();
    const bool has_ent = g_ent_n.defined() && g_ent_n.numel() > 0;
    if (!has_logp && !has_ent) {
      return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    const int64_t n = hidden_nd.size(0);
    at::Tensor grad_h_nd = at::empty_like(hidden_nd);
    at::Tensor grad_w_vd = at::zeros(w_vd.sizes(), w_vd.options().dtype(at::kFloat));
    at::Tensor w32_vd = w_vd.to(at::kFloat);
    for (int64_t start = 0; start < n; start += chunk) {
      const int64_t c = std::min(chunk, n - start);
      at::Tensor h_cd = hidden_nd.narrow(0, start, c);
      ChunkStats s = ChunkLogits(h_cd, w_vd, temperature);
      at::Tensor dz_cv;
      at::Tensor y_c1 = targets_n.narrow(0, start, c).unsqueeze(1);
      if (!has_ent) {
        // d logp_y / dz = onehot(y) - p, scaled by the incoming gradient;
        // p is computed in the logits' own buffer.
        at::Tensor g_c1 = g_logp_n.narrow(0, start, c).unsqueeze(1);
        dz_cv = s.z_cv.sub_(s.lse_c.unsqueeze(1)).exp_().mul_(-g_c1);
        dz_cv.scatter_add_(1, y_c1, g_c1);
      } else {
        at::Tensor logp_all_cv = s.z_cv - s.lse_c.unsqueeze(1);
        at::Tensor p_cv = logp_all_cv.exp();
        if (has_logp) {
          at::Tensor g_c1 = g_logp_n.narrow(0, start, c).unsqueeze(1);
          dz_cv = -p_cv * g_c1;
          dz_cv.scatter_add_(1, y_c1, g_c1);
        } else {
          dz_cv = at::zeros_like(p_cv);
        }
        at::Tensor ent_c1 = (-(p_cv * logp_all_cv).sum({-1})).unsqueeze(1);
        dz_cv = dz_cv - g_ent_n.narrow(0, start, c).unsqueeze(1) * p_cv * (logp_all_cv + ent_c1);
      }
      if (temperature != 1.0) dz_cv = dz_cv / temperature;
      grad_h_nd.narrow(0, start, c).copy_(dz_cv.mm(w32_vd));
      grad_w_vd.addmm_(dz_cv.t(), h_cd.to(at::kFloat));
    }
    return {grad_h_nd, grad_w_vd.to(w_vd.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

TokenLogProbs ComputeTokenLogProbs(const at::Tensor& hidden_nd, const at::Tensor& lm_head_vd,
                                   const at::Tensor& targets_n, double temperature, bool with_entropy,
                                   int64_t chunk_rows) {
  variable_list out = ChunkedLogProbFunction::apply(hidden_nd, lm_head_vd, targets_n, temperature,
                                                    with_entropy, std::max<int64_t>(chunk_rows, 1));
  TokenLogProbs r;
  r.logprobs_n = out[0];
  if (with_entropy) r.entropy_n = out[1];
  return r;
}

TokenLogProbs ReferenceTokenLogProbs(const at::Tensor& hidden_nd, const at::Tensor& lm_head_vd,
                                     const at::Tensor& targets_n, double temperature) {
  at::Tensor z_nv = at::linear(hidden_nd, lm_head_vd).to(at::kFloat) / temperature;
  at::Tensor logp_all = z_nv.log_softmax(-1);
  TokenLogProbs r;
  r.logprobs_n = logp_all.gather(1, targets_n.unsqueeze(1)).squeeze(1);
  r.entropy_n = -(logp_all.exp() * logp_all).sum({-1});
  return r;
}

absl::StatusOr<std::vector<std::vector<float>>> ScoreSequences(
    Qwen3Model& model, const std::vector<std::vector<int64_t>>& sequences,
    const std::vector<int64_t>& prompt_lens, double temperature) {
  if (prompt_lens.size() != sequences.size()) {
    return absl::InvalidArgumentError(absl::StrCat("ScoreSequences: ", sequences.size(), " sequences but ",
                                                   prompt_lens.size(), " prompt lengths"));
  }
  const int64_t vocab = model.config().vocab_size;
  for (size_t i = 0; i < sequences.size(); ++i) {
    for (size_t t = 0; t < sequences[i].size(); ++t) {
      const int64_t id = sequences[i][t];
      if (id < 0 || id >= vocab) {
        return absl::InvalidArgumentError(absl::StrCat("ScoreSequences: sequence ", i, " position ", t,
                                                       " holds token id ", id, ", outside the vocabulary [0, ",
                                                       vocab, ")"));
      }
    }
  }
  at::NoGradGuard no_grad;
  ModelInput in = ModelInput::Pack(sequences);
  std::vector<int64_t> rows, targets;
  int64_t start = 0;
  for (size_t i = 0; i < sequences.size(); ++i) {
    const int64_t len = static_cast<int64_t>(sequences[i].size());
    for (int64_t t = std::max<int64_t>(prompt_lens[i], 1); t < len; ++t) {
      rows.push_back(start + t - 1);
      targets.push_back(sequences[i][t]);
    }
    start += len;
  }
  std::vector<std::vector<float>> out(sequences.size());
  if (rows.empty()) return out;
  ModelOutput fwd = model.Forward(in);
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  const c10::Device device = fwd.hidden_td.device();
  at::Tensor hidden_nd = fwd.hidden_td.index_select(0, at::tensor(rows, i64).to(device));
  at::Tensor logp_n =
      ComputeTokenLogProbs(hidden_nd, model.lm_head_weight(), at::tensor(targets, i64).to(device), temperature, false)
          .logprobs_n.to(at::kCPU)
          .contiguous();
  const float* p = logp_n.data_ptr<float>();
  for (size_t i = 0; i < sequences.size(); ++i) {
    const int64_t count = static_cast<int64_t>(sequences[i].size()) - std::max<int64_t>(prompt_lens[i], 1);
    for (int64_t j = 0; j < count; ++j) out[i].push_back(*p++);
  }
  return out;
}

}  // namespace moerl
