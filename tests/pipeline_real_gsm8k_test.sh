#!/usr/bin/env bash
# The real-GSM8K variant, as a user runs it: examples/gsm8k_grpo.yaml (real
# GSM8K train/test, Qwen's tokenizer, bf16) from a Hugging Face checkpoint
# given by actor.path. The checkpoint is a tiny Qwen3-MoE with Qwen's full
# vocabulary (examples/tiny_qwen3_moe/config.json), made by the trainer itself: two SFT steps from scratch on
# GSM8K's train split, published as weights/v2 (safetensors + config.json +
# the tokenizer files). Then two GRPO steps of the pipeline from it on two
# trainer ranks with expert parallelism. Its sampler may emit ids of the
# output layer's padding rows (past the tokenizer's 151,669 tokens); the run
# must decode them as Hugging Face does, not stop.
set -euo pipefail
src="${TEST_SRCDIR}/moerl"
pipeline="$src/tools/pipeline/pipeline"
trainer="$src/trainer/trainer"
config="$src/examples/gsm8k_grpo.yaml"
root="${TEST_TMPDIR}/runs"
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$src"  # the example's dataset paths are relative to the repository

init="${TEST_TMPDIR}/init"
mkdir -p "$init"
cp third_party/data/qwen-tokenizer/{vocab.json,merges.txt,tokenizer_config.json} "$init/"
cp examples/tiny_qwen3_moe/config.json "$init/"

export OMP_NUM_THREADS=1
"$trainer" --config "$config" cluster.fileroot="$root" trial_name=sft allocation_mode= \
  actor.path="$init" actor.init_from_scratch=true trainer.mode=sft \
  trainer.sft_dataset=third_party/data/gsm8k/train.jsonl total_train_steps=2 \
  train_dataset.batch_size=2 >"$TEST_TMPDIR/sft.out" 2>&1 ||
  { cat "$TEST_TMPDIR/sft.out" >&2; fail "the SFT trainer exited non-zero"; }
ckpt="$root/gsm8k-grpo/sft/weights/v2"
for f in config.json model.safetensors vocab.json merges.txt tokenizer_config.json; do
  [[ -s "$ckpt/$f" ]] || fail "the published checkpoint $ckpt has no $f"
done

"$pipeline" --config "$config" cluster.fileroot="$root" trial_name=rl actor.path="$ckpt" \
  'allocation_mode=sglang:d1+megatron:(attn:d2|ffn:e2)' cluster.n_gpus_per_node=3 \
  total_train_steps=2 train_dataset.batch_size=2 gconfig.n_samples=2 gconfig.max_new_tokens=32 \
  actor.ppo_n_minibatches=1 sglang.context_length=2048 pipeline.stage_timeout_s=300 \
  >"$TEST_TMPDIR/rl.out" 2>&1 || { cat "$TEST_TMPDIR/rl.out" >&2; fail "the pipeline exited non-zero"; }
run="$root/gsm8k-grpo/rl"
[[ $(wc -l <"$run/stats.jsonl") -eq 2 ]] || fail "stats.jsonl has $(wc -l <"$run/stats.jsonl") lines, want 2"
[[ $(cat "$run/weights/LATEST") == 2 ]] || fail "weights/LATEST is '$(cat "$run/weights/LATEST")', want 2"
grep -q "## Configuration" "$run/report/index.md" || fail "the report has no configuration"
grep -Eq "^  dtype: bfloat16" "$run/config.yaml" || fail "config.yaml does not hold the example's actor.dtype"
# The batches hold real GSM8K prompts (group ids name the split).
grep -aq "gsm8k/train/" "$run/batches/000001.rec" || fail "batch 1 holds no gsm8k/train group"
echo "PASS: SFT checkpoint -> 2 GRPO steps on real GSM8K, $(grep -c . "$run/stats.jsonl") steps"
