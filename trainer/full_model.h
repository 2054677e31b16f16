// The whole model on one device, from a model sharded over ranks: what the
// trainer's rank 0 publishes, evaluates and checkpoints.
//
//   std::shared_ptr<Qwen3Model> full = FullModel(model, parallel);   // every rank calls it
//   auto published = PublishedModel(model, full, optimizer, at::kFloat, parallel);
//   if (parallel.rank() == 0) MOERL_RETURN_IF_ERROR(publisher.Publish(*published, version));
//
// FullModel is `model` itself on one process with the model on the host;
// else a fresh copy on the host (what publication, checkpoints and the
// evaluator's engine read) holding every expert and whole tensors (no dispatcher, router reducer or
// tensor-parallel seams, so its forwards do not communicate). Each rank
// writes what it holds into a zero copy, and a tensor split over ranks
// (experts over ep and etp, tensor-parallel slices over tp, layers over the
// pipeline stages; a tied embedding counts on the first stage only) is
// summed over them (exact: every element is nonzero on one rank only). The gathering
// functions are collectives: every rank of `parallel` calls them, in the
// same order.
//
// Mixed precision (actor.dtype=bfloat16): the optimizer's fp32 master
// weights are the training state; the bf16 parameters are their rounding.
// PublishedModel gathers the masters when weights are published in float32,
// so a reader gets the weights training holds, not a widened rounding.
//
// Thread-compatible; the returned models share nothing with `model` except
// when FullModel returns `model` itself.
#ifndef MOERL_TRAINER_FULL_MODEL_H_
#define MOERL_TRAINER_FULL_MODEL_H_

#include <c10/core/ScalarType.h>

#include <memory>
#include <vector>

#include "trainer/model/hf_weights.h"
#include "trainer/model/model.h"
#include "trainer/optimizer.h"
#include "trainer/parallel/parallel_state.h"

namespace moerl {

std::shared_ptr<Qwen3Model> FullModel(const std::shared_ptr<Qwen3Model>& model, const ParallelState& parallel);

// A fresh whole model of `dtype` filled from `bindings`: this rank's tensors
// of `model` (HfBindings(model), or MasterBindings), gathered as FullModel
// does (also on one process, where it is a plain copy).
std::shared_ptr<Qwen3Model> GatherFullModel(Qwen3Model& model, const std::vector<HfBinding>& bindings,
                                            c10::ScalarType dtype, const ParallelState& parallel);

// HfBindings(model) with each view moved onto the fp32 master copy of its
// parameter (`masters` in the order of model.parameters(), as
// TrainOptimizer::master_weights keeps them).
std::vector<HfBinding> MasterBindings(Qwen3Model& model, const std::vector<at::Tensor>& masters);

// What the publisher writes for `publish_dtype`: with master weights and
// float32, the masters gathered (GatherFullModel of MasterBindings); else
// `full` (FullModel of `model`; in bf16 it is already the masters rounded).
std::shared_ptr<Qwen3Model> PublishedModel(const std::shared_ptr<Qwen3Model>& model,
                                           const std::shared_ptr<Qwen3Model>& full, const TrainOptimizer& optimizer,
                                           c10::ScalarType publish_dtype, const ParallelState& parallel);

}  // namespace moerl

#endif  // MOERL_TRAINER_FULL_MODEL_H_
