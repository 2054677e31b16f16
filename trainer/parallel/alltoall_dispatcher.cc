#include "trainer/parallel/alltoall_dispatcher.h"

#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "common/logging.h"

namespace moerl {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows to and from the members of `group`; backward sends the gradients back
// the way the rows came.
class AllToAllFunction : public torch::autograd::Function<AllToAllFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input_nd, const std::vector<int64_t>& send_rows,
                            const std::vector<int64_t>& recv_rows, const ProcessGroup* group) {
    ctx->saved_data["send"] = send_rows;
    ctx->saved_data["recv"] = recv_rows;
    // The group is owned by the dispatcher, which outlives backward.
    ctx->saved_data["group"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(group));
    ctx->saved_data["width"] = input_nd.sizes().slice(1).vec();
    ctx->saved_data["dtype"] = static_cast<int64_t>(input_nd.scalar_type());
    ctx->saved_data["device"] = input_nd.device();
    return group->AllToAll(input_nd.contiguous(), send_rows, recv_rows);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto* group = reinterpret_cast<const ProcessGroup*>(static_cast<intptr_t>(ctx->saved_data["group"].toInt()));
    std::vector<int64_t> send = ctx->saved_data["send"].toIntVector();
    std::vector<int64_t> recv = ctx->saved_data["recv"].toIntVector();
    at::Tensor grad = grads[0];
    if (!grad.defined()) {
      // Every member still takes part in the exchange.
      std::vector<int64_t> shape = ctx->saved_data["width"].toIntVector();
      shape.insert(shape.begin(), std::accumulate(recv.begin(), recv.end(), int64_t{0}));
      grad = at::zeros(shape, at::TensorOptions()
                                  .dtype(static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt()))
                                  .device(ctx->saved_data["device"].toDevice()));
    }
    return {group->AllToAll(grad.contiguous(), recv, send), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct ExpertParallelState : DispatchState {
  DispatchedTokens own;             // this rank's copies, grouped by global expert
  std::vector<int64_t> send_rows;   // [P] copies sent to each member
  std::vector<int64_t> recv_rows;   // [P] copies received from each member
  at::Tensor sort_n;                // received [source][expert] -> [expert][source]; undefined if identity
  at::Tensor unsort_n;              // its inverse
};

}  // namespace

AllToAllTokenDispatcher::AllToAllTokenDispatcher(std::shared_ptr<const ProcessGroup> ep_group)
    : ep_(std::move(ep_group)) {
  MOERL_CHECK(ep_ != nullptr);
}

int64_t AllToAllTokenDispatcher::FirstLocalExpert(int64_t num_experts) const {
  return ep_->rank() * NumLocalExperts(num_experts);
}

int64_t AllToAllTokenDispatcher::NumLocalExperts(int64_t num_experts) const {
  MOERL_CHECK(num_experts % ep_->size() == 0) << num_experts << " experts over " << ep_->size() << " EP ranks";
  return num_experts / ep_->size();
}

DispatchedTokens AllToAllTokenDispatcher::Dispatch(const at::Tensor& x_td, const Routing& routing,
                                                   int64_t num_experts) {
  const int64_t members = ep_->size(), local = NumLocalExperts(num_experts);
  auto state = std::make_shared<ExpertParallelState>();
  state->own = local_.Dispatch(x_td, routing, num_experts);
  const std::vector<int64_t>& counts = state->own.tokens_per_expert;  // [E], this rank's copies
  state->send_rows.assign(members, 0);
  for (int64_t e = 0; e < num_experts; ++e) state->send_rows[e / local] += counts[e];

  // [P * L] in: block s = member s's copies for each of my experts.
  at::Tensor counts_in = ep_->AllToAllEqual(at::tensor(counts, at::TensorOptions().dtype(at::kLong)));
  const int64_t* c = counts_in.data_ptr<int64_t>();
  state->recv_rows.assign(members, 0);
  DispatchedTokens out;
  out.tokens_per_expert.assign(local, 0);
  for (int64_t s = 0; s < members; ++s) {
    for (int64_t l = 0; l < local; ++l) {
      state->recv_rows[s] += c[s * local + l];
      out.tokens_per_expert[l] += c[s * local + l];
    }
  }
  at::Tensor received_nd =
      AllToAllFunction::apply(state->own.tokens_nd, state->send_rows, state->recv_rows, ep_.get());

  if (local > 1 && members > 1) {
    // Row offsets of (source s, expert l) in the received buffer.
    std::vector<int64_t> sort, start(members * local);
    int64_t offset = 0;
    for (int64_t s = 0; s < members; ++s) {
      for (int64_t l = 0; l < local; ++l) {
        start[s * local + l] = offset;
        offset += c[s * local + l];
      }
    }
    sort.reserve(offset);
    for (int64_t l = 0; l < local; ++l) {
      for (int64_t s = 0; s < members; ++s) {
        for (int64_t i = 0; i < c[s * local + l]; ++i) sort.push_back(start[s * local + l] + i);
      }
    }
    std::vector<int64_t> unsort(sort.size());
    for (size_t i = 0; i < sort.size(); ++i) unsort[sort[i]] = static_cast<int64_t>(i);
    const auto i64 = at::TensorOptions().dtype(at::kLong);
    state->sort_n = at::tensor(sort, i64).to(x_td.device());
    state->unsort_n = at::tensor(unsort, i64).to(x_td.device());
    out.tokens_nd = received_nd.index_select(0, state->sort_n);
  } else {
    out.tokens_nd = received_nd;
  }
  out.num_tokens = x_td.size(0);
  out.state = std::move(state);
  return out;
}

at::Tensor AllToAllTokenDispatcher::Combine(const at::Tensor& expert_out_nd, const DispatchedTokens& dispatched) {
  const auto* state = dynamic_cast<const ExpertParallelState*>(dispatched.state.get());
  MOERL_CHECK(state != nullptr) << "Combine got tokens from another dispatcher";
  at::Tensor by_source_nd = state->unsort_n.defined() ? expert_out_nd.index_select(0, state->unsort_n) : expert_out_nd;
  at::Tensor returned_nd = AllToAllFunction::apply(by_source_nd, state->recv_rows, state->send_rows, ep_.get());
  return local_.Combine(returned_nd, state->own);
}

}  // namespace moerl
