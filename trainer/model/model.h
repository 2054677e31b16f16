// Qwen3ForCausalLM: Qwen3-MoE (and dense Qwen3, and the mixed layouts that
// mlp_only_layers / decoder_sparse_step allow) from an HF config, for one
// device, as a plain torch::nn::Module.
//
//   h = embed[tokens]; for each layer: h = layer(h); h = RmsNorm_final(h)
//   logits = h lm_head^T   (lm_head = embed when tie_word_embeddings)
//
// Inputs are packed: T tokens of several sequences end to end, with their
// positions and segment lengths; no attention crosses a segment boundary.
// Parameter names are transformers v5's in-memory names
// ("model.layers.0.mlp.experts.gate_up_proj"); hf_weights.h maps them to the
// per-expert checkpoint names.
//
//   auto model = std::make_shared<Qwen3Model>(config);
//   model->InitializeWeights(/*seed=*/1);                // or LoadHfWeights(...)
//   ModelInput in = ModelInput::Pack({{1, 2, 3}, {4, 5}});
//   ModelOutput out = model->Forward(in);
//   at::Tensor logits_tv = model->Logits(out.hidden_td);
//   model->to(at::kBFloat16);                            // fp32 or bf16
//   model->to(at::Device("cuda:0"));                     // or a GPU
//
// ModelInput's tensors may stay on the host: Forward moves the token ids,
// positions and replayed routes to the model's device.
//
// Threading: thread-compatible; one forward at a time per model.
#ifndef MOERL_TRAINER_MODEL_MODEL_H_
#define MOERL_TRAINER_MODEL_MODEL_H_

#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "trainer/model/layers.h"
#include "trainer/model/router_losses.h"
#include "trainer/model/token_logprobs.h"

namespace moerl {

struct ModelInput {
  at::Tensor tokens_t;     // int64 [T]
  at::Tensor positions_t;  // int64 [T]
  PackedLayout layout;     // segment lengths, sum = T
  KvCache* cache = nullptr;  // generation only; cache->slot_of_segment set
  // Router replay: one int64 [T, top_k] per MoE layer (layer order); rows
  // of -1 route normally. Empty: no replay.
  std::vector<at::Tensor> forced_topk_ids_tk;
  // The last `padding_tokens` packed tokens only pad T (to a multiple of the
  // sequence shards, see Qwen3Model::SetSequenceShard): the routers' losses
  // leave them out. They are a segment of their own, so no other token
  // attends to them.
  int64_t padding_tokens = 0;

  // Packs whole sequences with positions 0..len-1 each.
  static ModelInput Pack(const std::vector<std::vector<int64_t>>& sequences);
};

struct ModelOutput {
  // After the final norm, model dtype. A pipeline stage that is not the last
  // returns its last layer's output (no norm): the next stage's input.
  at::Tensor hidden_td;
  // fp32 scalars; undefined without MoE layers. With a RouterStatsReducer
  // installed they are this rank's shares: their sum over the ranks of the
  // batch is the whole batch's loss (router_losses.h).
  at::Tensor aux_loss;
  at::Tensor z_loss;
  // A stage of several (pipeline parallel) cannot finish the aux loss alone:
  // it needs the router counts of every stage's MoE layers. It returns
  // aux_loss undefined and these instead; RouterAuxShare(aux_prob_sum_e,
  // totals) gives its share once the pipeline has summed router_stats
  // (z_loss is per layer and stays complete). Undefined otherwise.
  at::Tensor aux_prob_sum_e;           // fp32 [E], with the graph
  at::Tensor router_stats;             // fp64 [E + 2], this stage's layers (router_losses.h)
  std::vector<int64_t> moe_layers;     // layer index of each entry below
  std::vector<at::Tensor> topk_ids_tk; // chosen experts per MoE layer
  std::vector<at::Tensor> router_topk_ids_tk;  // the routers' own (replay aside)
};

// This rank's part of a packed micro-batch under context parallelism
// (Qwen3Model::SetContextSplit).
struct ContextPart {
  // The part's rows: their tokens, global positions and replayed routes.
  // Its layout is one segment: the attention core installed with the split
  // (Attention::set_core) knows the rows' sequences.
  ModelInput input;
  at::Tensor real_t;  // bool [n]: false for rows that only pad the part
};

class Qwen3Model : public torch::nn::Module {
 public:
  explicit Qwen3Model(const ModelConfig& config);
  // Without the from-scratch init: the matrices' values are unspecified
  // (at::empty), the norms ones. For callers that overwrite every
  // parameter (gathering a sharded model, loading a checkpoint), where
  // drawing a random init first is wasted work.
  struct Uninitialized {};
  Qwen3Model(const ModelConfig& config, Uninitialized);

  // From-scratch init: normal(0, initializer_range) for matrices, ones for
  // norms; the same seed gives the same weights, also for a rank that holds
  // a range of the experts (it gets that range of the full model's values).
  void InitializeWeights(uint64_t seed);

  ModelOutput Forward(const ModelInput& input);
  // The layers this model holds (a pipeline stage, see KeepStage): the first
  // stage embeds input.tokens_t; the others start from `stage_input_td`
  // ([T, D], the previous stage's hidden_td). Only the last stage applies
  // the final norm. On the whole model it is Forward(input).
  ModelOutput Forward(const ModelInput& input, const at::Tensor& stage_input_td);

  // Keeps layers [begin, end) and frees the others (their modules are
  // unregistered; names keep the global layer index, "model.layers.2...").
  // The first stage (begin == 0) keeps the embedding, the last (end == L)
  // the final norm and the LM head; with tied embeddings the last stage
  // keeps its own copy of the embedding table (Megatron's), whose gradient
  // the trainer sums over the embedding group. Call once, before loading
  // weights or building the optimizer. CHECKs the range.
  void KeepStage(int64_t begin, int64_t end);
  int64_t first_layer() const { return first_layer_; }  // global index of layers()[0]
  bool is_first_stage() const { return first_layer_ == 0; }
  bool is_last_stage() const { return first_layer_ + static_cast<int64_t>(layers_.size()) == config_.num_hidden_layers; }
  bool holds_all_layers() const { return is_first_stage() && is_last_stage(); }
  bool holds_embedding() const { return embed_tokens_ != nullptr; }
  at::Tensor Logits(const at::Tensor& hidden_td);
  // [V, D]: lm_head, or the embedding table when tied.
  at::Tensor lm_head_weight() const;

  // Loss the oracle uses: mean next-token CE within each segment, plus
  // router_aux_loss_coef * aux (+ router_z_loss_coef * z) for MoE models.
  at::Tensor CausalLmLoss(const ModelInput& input);

  void SetExpertPath(ExpertPath path);
  void SetDispatcher(const std::shared_ptr<TokenDispatcher>& dispatcher);
  // How token ids become hidden states: embedding(table_vd, tokens_t) ->
  // h_td. Unset: at::embedding. trainer/parallel installs a vocabulary-
  // parallel lookup (the table then holds a slice of the vocabulary).
  using EmbeddingFn = std::function<at::Tensor(const at::Tensor& table_vd, const at::Tensor& tokens_t)>;
  void SetEmbedding(EmbeddingFn fn) { embedding_ = std::move(fn); }
  WeightModule& embed_tokens() { return *embed_tokens_; }
  // Null when tied to the embedding.
  WeightModule* lm_head() { return lm_head_.get(); }
  WeightModule& final_norm() { return *norm_; }
  // Sequence parallelism (trainer/parallel sets it with tensor parallelism):
  // the hidden states between blocks, Forward's hidden_td and topk_ids_tk
  // are rows [shard T/shards, (shard + 1) T/shards) of the packed tokens,
  // and T must be a multiple of `shards` (pad with ModelInput.padding_tokens).
  void SetSequenceShard(int64_t shard, int64_t shards);
  int64_t sequence_shards() const { return sequence_shards_; }
  // How log-probs of targets_n, predicted by packed rows rows_n (indices into
  // all T tokens), come from Forward's hidden_td and lm_head_weight(). Unset
  // (the default): ComputeTokenLogProbs on hidden_td.index_select(0, rows_n)
  // (logprobs.h). trainer/parallel installs one that gathers the sequence
  // shards and scores over a vocabulary-parallel LM head.
  using TokenScorer =
      std::function<TokenLogProbs(const at::Tensor& hidden_td, const at::Tensor& lm_head_vd, const at::Tensor& rows_n,
                                  const at::Tensor& targets_n, double temperature, bool with_entropy)>;
  void SetTokenScorer(TokenScorer fn) { token_scorer_ = std::move(fn); }
  const TokenScorer& token_scorer() const { return token_scorer_; }
  // Context parallelism (trainer/parallel sets it, with an attention core on
  // every layer): Forward takes the whole packed micro-batch and runs the
  // layers on split(input), this rank's part of the tokens (with sequence
  // parallelism, rows of the part are then split over the shards).
  // Forward's hidden_td and topk_ids_tk are the part's rows; its padding
  // rows stay out of the routers' losses. Not with a KV cache or a pipeline
  // stage.
  using ContextSplitFn = std::function<ContextPart(const ModelInput& input)>;
  void SetContextSplit(ContextSplitFn fn) { context_split_ = std::move(fn); }
  bool context_parallel() const { return static_cast<bool>(context_split_); }
  // Null (the default): the aux and z losses see this process's tokens only.
  void SetRouterStatsReducer(std::shared_ptr<RouterStatsReducer> reducer) { router_stats_ = std::move(reducer); }

  const ModelConfig& config() const { return config_; }
  // The held layers: all of them, or a pipeline stage's (global index
  // first_layer() + i).
  const std::vector<std::shared_ptr<DecoderLayer>>& layers() const { return layers_; }
  c10::ScalarType dtype() const { return embed_tokens_->weight.scalar_type(); }
  // Where the parameters are (a pipeline stage without the embedding: its
  // first layer's). CHECKs that the model holds a parameter.
  c10::Device device() const;

 private:
  ModelConfig config_;
  std::shared_ptr<torch::nn::Module> backbone_;  // "model"
  std::shared_ptr<WeightModule> embed_tokens_, norm_, lm_head_;
  std::vector<std::shared_ptr<DecoderLayer>> layers_;  // held layers, from first_layer_
  int64_t first_layer_ = 0;
  // Every parameter of the whole model, in registration order, with its full
  // shape: InitializeWeights draws them all so a stage gets the whole
  // model's values.
  std::vector<std::pair<std::string, std::vector<int64_t>>> full_shapes_;
  std::shared_ptr<RouterStatsReducer> router_stats_;
  EmbeddingFn embedding_;
  TokenScorer token_scorer_;
  ContextSplitFn context_split_;
  int64_t sequence_shard_ = 0, sequence_shards_ = 1;
};

}  // namespace moerl

#endif  // MOERL_TRAINER_MODEL_MODEL_H_
