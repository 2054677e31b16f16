#include "trainer/model/hf_weights.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>

#include <cstring>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/safetensors/checkpoint_dir.h"
#include "common/status.h"

namespace moerl {
namespace {

absl::StatusOr<c10::ScalarType> ToScalarType(Dtype dtype, const std::string& name) {
  switch (dtype) {
    case Dtype::kF32: return at::kFloat;
    case Dtype::kBF16: return at::kBFloat16;
    case Dtype::kF16: return at::kHalf;
    case Dtype::kF64: return at::kDouble;
    default:
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" has dtype ", DtypeName(dtype),
                                                     "; weights must be F32, BF16, F16 or F64"));
  }
}

absl::StatusOr<Dtype> ToDtype(c10::ScalarType type) {
  switch (type) {
    case at::kFloat: return Dtype::kF32;
    case at::kBFloat16: return Dtype::kBF16;
    case at::kHalf: return Dtype::kF16;
    case at::kDouble: return Dtype::kF64;
    default: return absl::InvalidArgumentError("save dtype must be float32, bfloat16, float16 or float64");
  }
}

std::string ShapeString(const std::vector<int64_t>& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

// Checkpoint names of the experts other ranks hold (expert parallelism).
std::set<std::string> ExpertsHeldElsewhere(const Qwen3Model& model) {
  std::set<std::string> names;
  for (size_t l = 0; l < model.layers().size(); ++l) {
    const auto& moe = model.layers()[l]->moe;
    if (!moe || moe->experts->holds_all()) continue;
    const Experts& ex = *moe->experts;
    for (int64_t e = 0; e < ex.num_experts(); ++e) {
      if (e >= ex.first_expert() && e < ex.first_expert() + ex.num_local()) continue;
      for (const char* part : {"gate_proj", "up_proj", "down_proj"}) {
        names.insert(absl::StrCat("model.layers.", model.first_layer() + static_cast<int64_t>(l), ".mlp.experts.", e,
                                  ".", part, ".weight"));
      }
    }
  }
  return names;
}

// First expert held by the layer whose experts' parameter is `name`
// ("model.layers.3.mlp.experts.gate_up_proj" -> layer 3).
int64_t FirstExpertOf(const Qwen3Model& model, const std::string& name) {
  for (size_t l = 0; l < model.layers().size(); ++l) {
    const std::string prefix = absl::StrCat("model.layers.", model.first_layer() + static_cast<int64_t>(l), ".mlp.experts.");
    if (absl::StartsWith(name, prefix) && model.layers()[l]->moe) {
      return model.layers()[l]->moe->experts->first_expert();
    }
  }
  return 0;
}

// The experts module whose parameter is `name`, or null.
const Experts* ExpertsOf(const Qwen3Model& model, const std::string& name) {
  for (size_t l = 0; l < model.layers().size(); ++l) {
    const std::string prefix = absl::StrCat("model.layers.", model.first_layer() + static_cast<int64_t>(l), ".mlp.experts.");
    if (absl::StartsWith(name, prefix) && model.layers()[l]->moe) return model.layers()[l]->moe->experts.get();
  }
  return nullptr;
}

// A tensor another pipeline stage holds: a layer outside this stage's
// range, the embedding off the first stage, the final norm and LM head off
// the last.
bool HeldByOtherStage(const Qwen3Model& model, const std::string& name) {
  if (model.holds_all_layers()) return false;
  const std::string layers = "model.layers.";
  if (absl::StartsWith(name, layers)) {
    int64_t l = 0;
    const size_t dot = name.find('.', layers.size());
    if (dot == std::string::npos || !absl::SimpleAtoi(name.substr(layers.size(), dot - layers.size()), &l)) {
      return false;
    }
    return l < model.first_layer() || l >= model.first_layer() + static_cast<int64_t>(model.layers().size());
  }
  if (name == "model.embed_tokens.weight") return !model.holds_embedding();
  if (name == "model.norm.weight" || name == "lm_head.weight") return !model.is_last_stage();
  return false;
}

}  // namespace

std::vector<HfBinding> HfBindings(Qwen3Model& model, bool grads) {
  std::vector<HfBinding> out;
  std::map<const at::TensorImpl*, const WeightModule*> sliced;
  for (const auto& module : model.modules(/*include_self=*/false)) {
    if (auto w = std::dynamic_pointer_cast<WeightModule>(module); w && w->sliced()) {
      sliced[w->weight.unsafeGetTensorImpl()] = w.get();
    }
  }
  const std::string gate_up = "mlp.experts.gate_up_proj", down = "mlp.experts.down_proj";
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    at::Tensor t = grads ? item.value().grad() : item.value();
    if (absl::EndsWith(name, gate_up)) {
      const std::string prefix = name.substr(0, name.size() - std::string("gate_up_proj").size());
      const int64_t f = t.size(1) / 2, first = FirstExpertOf(model, name);
      const Experts* ex = ExpertsOf(model, name);
      const bool sliced = ex != nullptr && f != ex->full_intermediate();
      for (int64_t e = 0; e < t.size(0); ++e) {
        HfBinding gate{absl::StrCat(prefix, first + e, ".gate_proj.weight"), t[e].narrow(0, 0, f)};
        HfBinding up{absl::StrCat(prefix, first + e, ".up_proj.weight"), t[e].narrow(0, f, f)};
        if (sliced) {
          for (HfBinding* b : {&gate, &up}) {
            b->slice_dim = 0;
            b->slice_start = ex->intermediate_start();
            b->full_size = ex->full_intermediate();
          }
        }
        out.push_back(std::move(gate));
        out.push_back(std::move(up));
      }
    } else if (absl::EndsWith(name, down)) {
      const std::string prefix = name.substr(0, name.size() - std::string("down_proj").size());
      const int64_t first = FirstExpertOf(model, name);
      const Experts* ex = ExpertsOf(model, name);
      const bool sliced = ex != nullptr && t.size(2) != ex->full_intermediate();
      for (int64_t e = 0; e < t.size(0); ++e) {
        HfBinding down{absl::StrCat(prefix, first + e, ".down_proj.weight"), t[e]};
        if (sliced) {
          down.slice_dim = 1;
          down.slice_start = ex->intermediate_start();
          down.full_size = ex->full_intermediate();
        }
        out.push_back(std::move(down));
      }
    } else if (auto it = sliced.find(item.value().unsafeGetTensorImpl()); it != sliced.end()) {
      out.push_back({name, t, it->second->slice_dim(), it->second->slice_start(), it->second->full_size()});
    } else {
      out.push_back({name, t});
    }
  }
  return out;
}

absl::Status LoadHfWeights(const std::string& dir, Qwen3Model* model, HfLoadStats* stats) {
  std::vector<HfBinding> bindings = HfBindings(*model);
  return LoadHfBindings(dir, *model, bindings, stats);
}

absl::Status LoadHfBindings(const std::string& dir, Qwen3Model& model, std::vector<HfBinding>& bindings,
                            HfLoadStats* stats) {
  MOERL_ASSIGN_OR_RETURN(auto ckpt, CheckpointDir::Open(dir));
  at::NoGradGuard no_grad;
  std::set<std::string> expected;
  for (HfBinding& b : bindings) {
    expected.insert(b.hf_name);
    auto ref = ckpt->Get(b.hf_name);
    if (!ref.ok()) return Annotate(ref.status(), "loading weights");
    const TensorInfo& info = *ref->info;
    std::vector<int64_t> want = b.view.sizes().vec();
    if (b.slice_dim >= 0) want[b.slice_dim] = b.full_size;
    if (info.shape != want) {
      return absl::InvalidArgumentError(absl::StrCat(*ref->file, ": tensor \"", b.hf_name, "\" has shape ",
                                                     ShapeString(info.shape), " but the config implies ",
                                                     ShapeString(want)));
    }
    MOERL_ASSIGN_OR_RETURN(c10::ScalarType type, ToScalarType(info.dtype, b.hf_name));
    // Only the held slice, into a buffer of its shape (mmapped data need
    // not be aligned), then converted into the view.
    at::Tensor part = at::empty(b.view.sizes(), at::TensorOptions().dtype(type));
    if (info.shape.empty()) {
      if (!ref->bytes.empty()) std::memcpy(part.data_ptr(), ref->bytes.data(), ref->bytes.size());
      if (stats != nullptr) stats->bytes_read += ref->bytes.size();
    } else {
      const int dim = b.slice_dim >= 0 ? static_cast<int>(b.slice_dim) : 0;
      const int64_t start = b.slice_dim >= 0 ? b.slice_start : 0;
      MOERL_ASSIGN_OR_RETURN(
          uint64_t copied,
          CopyTensorSlice(info, ref->bytes, *ref->file, dim, start, b.view.size(dim),
                          {static_cast<uint8_t*>(part.data_ptr()), part.nbytes()}));
      if (stats != nullptr) stats->bytes_read += copied;
    }
    b.view.copy_(part);
  }
  // A rank that holds a range of the experts reads only those; the others'
  // tensors are expected in the checkpoint but not read.
  const std::set<std::string> elsewhere = ExpertsHeldElsewhere(model);
  std::vector<std::string> unexpected;
  for (const std::string& name : ckpt->Names()) {
    if (expected.count(name) || elsewhere.count(name) || HeldByOtherStage(model, name)) continue;
    if (name == "lm_head.weight" && model.config().tie_word_embeddings) continue;
    if (absl::EndsWith(name, "rotary_emb.inv_freq")) continue;
    unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": ", unexpected.size(), " tensor(s) the config does not explain, first \"", unexpected[0],
        "\" (does config.json match the weights?)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Qwen3Model>> LoadHfModel(const std::string& dir) {
  MOERL_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromFile(dir + "/config.json"));
  auto model = std::make_shared<Qwen3Model>(config);
  MOERL_RETURN_IF_ERROR(LoadHfWeights(dir, model.get()));
  return model;
}

absl::Status SaveHfCheckpoint(Qwen3Model& model, const std::string& dir, c10::ScalarType save_dtype,
                              uint64_t max_shard_bytes) {
  CheckpointWriteOptions options;
  options.max_shard_bytes = max_shard_bytes;
  return SaveHfCheckpoint(model, dir, save_dtype, std::move(options));
}

absl::Status SaveHfCheckpoint(Qwen3Model& model, const std::string& dir, c10::ScalarType save_dtype,
                              CheckpointWriteOptions options) {
  MOERL_ASSIGN_OR_RETURN(Dtype dtype, ToDtype(save_dtype));
  if (!model.holds_all_layers()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the model holds layers [", model.first_layer(), ", ", model.first_layer() + model.layers().size(), ") of ",
        model.config().num_hidden_layers, " (a pipeline stage); a checkpoint needs every layer, gathered first"));
  }
  for (size_t l = 0; l < model.layers().size(); ++l) {
    const auto& moe = model.layers()[l]->moe;
    if (moe && !moe->experts->holds_all()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "layer ", l, " holds experts [", moe->experts->first_expert(), ", ",
          moe->experts->first_expert() + moe->experts->num_local(), ") of ", moe->experts->num_experts(),
          " (expert parallel); a checkpoint needs every expert, gathered on one rank first"));
    }
  }
  for (const HfBinding& b : HfBindings(model)) {
    if (b.slice_dim >= 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "\"", b.hf_name, "\" holds rows [", b.slice_start, ", ", b.slice_start + b.view.size(b.slice_dim),
          ") of ", b.full_size, " along dim ", b.slice_dim,
          " (tensor parallel); a checkpoint needs whole tensors, gathered on one rank first"));
    }
  }
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> keep_alive;
  std::vector<TensorToWrite> tensors;
  for (HfBinding& b : HfBindings(model)) {
    at::Tensor t = b.view.to(at::kCPU, save_dtype).contiguous();  // data_ptr below reads host memory
    keep_alive.push_back(t);
    tensors.push_back({b.hf_name, dtype, t.sizes().vec(),
                       {static_cast<const uint8_t*>(t.data_ptr()), t.nbytes()}});
  }
  ModelConfig config = model.config();
  std::string text = config.ToJson();
  // The saved dtype is what loaders should assume.
  const std::string from = "\"torch_dtype\": \"float32\"";
  const size_t at = text.find(from);
  if (at != std::string::npos) {
    text.replace(at, from.size(),
                 absl::StrCat("\"torch_dtype\": \"", save_dtype == at::kBFloat16 ? "bfloat16"
                                                    : save_dtype == at::kHalf   ? "float16"
                                                    : save_dtype == at::kDouble ? "float64"
                                                                                : "float32",
                              "\""));
  }
  // config.json is published with the weights, in one atomic step.
  options.extra_files["config.json"] = std::move(text);
  return WriteCheckpointDir(dir, tensors, options);
}

}  // namespace moerl
