// Hugging Face checkpoint <-> Qwen3Model parameters.
//
// The checkpoint on disk keeps one tensor per expert
// (model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight) while the model
// stores them fused ([E, 2F, D] gate_up_proj, [E, D, F] down_proj, like
// transformers v5 in memory). HfBindings() lists, for every checkpoint name,
// a view into the parameter (or its gradient) that holds that tensor; loading
// copies into the views, saving writes the views' bytes, and the oracle test
// compares gradients through the same mapping. Every other name is identical
// on both sides; lm_head.weight is absent when embeddings are tied.
//
//   MOERL_ASSIGN_OR_RETURN(auto model, LoadHfModel("/models/Qwen3-30B-A3B"));
//   MOERL_RETURN_IF_ERROR(SaveHfCheckpoint(*model, "/tmp/out", at::kBFloat16, 5ull << 30));
//
// A model whose MoE layers hold a range of the experts (expert parallelism,
// Experts::KeepRange) binds, loads and reads only those experts, under their
// global checkpoint indices; the other experts' tensors are skipped, not
// rejected. Likewise a weight holding a slice (WeightModule::KeepSlice) reads
// only its slice's bytes of the checkpoint tensor. Saving either is
// FailedPrecondition.
//
// Loading checks that every expected tensor is present once with the expected
// shape, converts F32/BF16/F16/F64 to the model's dtype, and rejects
// unexpected tensors by name. Saving publishes config.json and the safetensors
// files (sharded with an index past max_shard_bytes). Not thread-safe with a
// concurrent forward on the same model.
#ifndef MOERL_TRAINER_MODEL_HF_WEIGHTS_H_
#define MOERL_TRAINER_MODEL_HF_WEIGHTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/safetensors/checkpoint_dir.h"
#include "trainer/model/model.h"

namespace moerl {

struct HfBinding {
  std::string hf_name;
  at::Tensor view;  // into the parameter (or its .grad()), checkpoint shape
  // A weight holding a slice (WeightModule::KeepSlice, tensor parallelism):
  // `view` is rows [slice_start, slice_start + view.size(slice_dim)) along
  // slice_dim of the checkpoint tensor, whose size there is full_size.
  int64_t slice_dim = -1, slice_start = 0, full_size = 0;
};

// In a fixed order (the model's parameter order, experts expanded).
// With grads=true the views are into gradients (which must exist).
std::vector<HfBinding> HfBindings(Qwen3Model& model, bool grads = false);

// What loading read from the checkpoint's files.
struct HfLoadStats {
  uint64_t bytes_read = 0;  // bytes copied out of the files (the held slices only)
};

// Each binding reads only its part of the checkpoint tensor: a slice's rows
// (one byte range along dim 0, strided rows along dim 1; CopyTensorSlice),
// a held expert's tensors, never the rest. `stats` may be null.
absl::Status LoadHfWeights(const std::string& dir, Qwen3Model* model, HfLoadStats* stats = nullptr);

// The same into `bindings`: HfBindings(model) with the views moved onto
// other tensors shaped like the parameters (MasterBindings in
// trainer/full_model.h; the optimizer's moments). Every tensor of the
// folder must be one `model` expects (held here or by another rank).
absl::Status LoadHfBindings(const std::string& dir, Qwen3Model& model, std::vector<HfBinding>& bindings,
                            HfLoadStats* stats = nullptr);

// Reads dir/config.json, builds the model in fp32, loads the weights.
absl::StatusOr<std::shared_ptr<Qwen3Model>> LoadHfModel(const std::string& dir);

// save_dtype: at::kFloat, at::kBFloat16 or at::kHalf.
absl::Status SaveHfCheckpoint(Qwen3Model& model, const std::string& dir, c10::ScalarType save_dtype,
                              uint64_t max_shard_bytes);
// The same with options: options.extra_files (probe.json, tokenizer files)
// are published in the same atomic step; config.json is always written.
absl::Status SaveHfCheckpoint(Qwen3Model& model, const std::string& dir, c10::ScalarType save_dtype,
                              CheckpointWriteOptions options);

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_HF_WEIGHTS_H_
