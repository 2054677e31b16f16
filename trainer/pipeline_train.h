// The trainer's two uses of the pipeline schedule (pipeline parallelism,
// pp > 1; the model is a stage of ParallelizeQwen3):
//
//  - PipelinePolicyForward: Prepare's no-grad log-probs (the proximal
//    recompute) as a forward-only pass: stage s receives each micro-batch's
//    activation from s - 1, runs its layers and sends the output on; the
//    last stage scores, and its log-probs are broadcast over the pp group,
//    so every stage's Prepare sees the one-process values.
//  - PipelineMinibatchGradients: one minibatch's gradient by Run1F1B over
//    this data shard's micro-batches (every stage of a pp group reads the
//    same shard and packs the same micro-batches); the objective's loss and
//    statistics on the last stage, the routers' terms on every stage.
//
//   objective.set_batch_forward(PipelineBatchForward(state.group(RankGroupKind::kPipeline)));
//   std::vector<double> aux = PipelineMinibatchGradients(model, objective, seqs, micros, scales,
//                                                        denominator, aux_coef, z_coef, pp, &local_stats);
//
// Under tensor (+ sequence) parallelism each tp rank sends its own token
// rows [r T/tp, (r+1) T/tp) to the same tp rank of the next stage (the pp
// group's peers); the row count travels first, so the shapes follow.
// Collectives: every rank of the pp group calls these in the same order
// with the same micro-batches. Throws CollectiveError when a peer fails.
#ifndef MOERL_TRAINER_PIPELINE_TRAIN_H_
#define MOERL_TRAINER_PIPELINE_TRAIN_H_

#include <vector>

#include "trainer/micro_batches.h"
#include "trainer/model/model.h"
#include "trainer/parallel/process_groups.h"
#include "trainer/policy_forward.h"
#include "trainer/stats_log.h"
#include "trainer/train_batch.h"
#include "trainer/train_step.h"

namespace moerl {

// logp_n, output_lens and num_tokens of each micro-batch on every rank of
// `pp` (entropy_n and the router fields stay undefined). No grad.
std::vector<PolicyOutput> PipelinePolicyForward(Qwen3Model& model, const std::vector<TrainSequence>& seqs,
                                                const std::vector<IndexList>& micros,
                                                const PolicyForwardOptions& options, const ProcessGroup& pp);

// PipelinePolicyForward over `pp` (which must outlive it) as an
// Objective's batch forward.
BatchPolicyForward PipelineBatchForward(const ProcessGroup& pp);

// Accumulates the gradient of `micros` (this data shard's micro-batches of
// one minibatch) into the stage's parameters by Run1F1B. Micro-batch m's
// loss is objective.MicroBatchLoss(..., denominator, stats) on the last
// stage, plus on every stage its routers' z and aux terms weighted by
// router_scales[m]. Returns this rank's aux-loss share of each micro-batch
// (0 where the stage has no MoE layer; sum over tp-dp-cp and pp for the
// forward's value).
std::vector<double> PipelineMinibatchGradients(Qwen3Model& model, Objective& objective,
                                               const std::vector<TrainSequence>& seqs,
                                               const std::vector<IndexList>& micros,
                                               const std::vector<double>& router_scales, double denominator,
                                               double aux_coef, double z_coef, const ProcessGroup& pp,
                                               StatsRecorder* stats);

}  // namespace moerl

#endif  // MOERL_TRAINER_PIPELINE_TRAIN_H_
