#!/usr/bin/env bash
# moerl pipeline (`bazel run //:pipeline`).
#
# Today this is a smoke run that proves every stage binary is built and
# wired: the feeder reads the embedded GSM8K-format sample, the scorer scores
# completions against its gold answers, the trainer turns the rewards into
# GRPO advantages and the rollout sampler draws from a row of logits. The full
# GRPO loop (rings, embedded engine, MoE trainer) replaces it as the stage
# issues land; the command stays the same.
set -euo pipefail

# Binaries live in the runfiles tree, which is the working directory under
# `bazel run` and `bazel test`.
root="${RUNFILES_DIR:-${TEST_SRCDIR:-$PWD/..}}/moerl"
[[ -x "$root/dataset/dataset_feeder" ]] || root="$PWD"
feeder="$root/dataset/dataset_feeder"
scorer="$root/reward/reward_scorer"
trainer="$root/trainer/trainer"
bridge="$root/rollout/rollout_bridge"
sample="$root/dataset/testdata/sample.jsonl"

echo "moerl pipeline (smoke): the GRPO loop is not built yet; checking each stage binary"

# Stages take `--config <yaml>` plus key=value overrides (docs/config.md).
tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/moerl-pipeline.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/smoke.yaml" <<YAML
experiment_name: smoke
trial_name: trial0
train_dataset:
  path: $sample
YAML

mapfile -t golds < <("$feeder" --config "$tmp/smoke.yaml" +dataset.print_gold=true)
echo "dataset_feeder: ${#golds[@]} prompts from $(basename "$sample")"
[[ ${#golds[@]} -gt 0 ]] || { echo "pipeline: feeder produced no prompts" >&2; exit 1; }

rewards=()
for gold in "${golds[@]}"; do
  # One right and one wrong completion per prompt: a group of two.
  right=$("$scorer" --completion "The answer is \\boxed{$gold}." --gold "$gold")
  wrong=$("$scorer" --completion "The answer is $((gold + 1))." --gold "$gold")
  [[ "$right" == "reward=1 reason=match" ]] || { echo "pipeline: scorer said '$right' for gold $gold" >&2; exit 1; }
  [[ "$wrong" == "reward=0 reason=mismatch" ]] || { echo "pipeline: scorer said '$wrong' for gold $gold+1" >&2; exit 1; }
  rewards+=(1 0)
done
echo "reward_scorer: ${#rewards[@]} completions scored"

joined=$(IFS=,; echo "${rewards[*]}")
mapfile -t advantages < <("$trainer" --rewards "$joined" --group_size 2)
echo "trainer: advantages of the first group: ${advantages[0]} ${advantages[1]}"
[[ ${#advantages[@]} -eq ${#rewards[@]} ]] || { echo "pipeline: trainer returned ${#advantages[@]} advantages" >&2; exit 1; }

token=$("$bridge" --logits 0.1,2.5,0.3 --temperature 0)
echo "rollout_bridge: greedy pick $token"
[[ "$token" == token=1* ]] || { echo "pipeline: sampler picked '$token'" >&2; exit 1; }

echo "pipeline smoke: OK"
