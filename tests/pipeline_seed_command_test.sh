#!/usr/bin/env bash
# The seed run's AReaL command, word for word, with `pipeline` in place of
# AReaL's python script and examples/qwen3_30b_a3b_megatron.yaml as the
# config (no `+` on its keys, `True` as a boolean, the model as a Hugging Face
# id), in dry-run mode: the plan is printed and every stage binary checks the
# configuration it would get (--check_config); nothing starts. The model id
# resolves in a fake Hugging Face cache under TEST_TMPDIR (found through
# HF_HOME) that holds Qwen3-30B-A3B's config.json.
# Fails if the plan is wrong, if any stage rejects any of the keys, or if a
# misspelt key or an uncached model is accepted.
set -euo pipefail
pipeline="${TEST_SRCDIR}/moerl/tools/pipeline/pipeline"
fail() { echo "FAIL: $*" >&2; exit 1; }

# --- a Hugging Face cache as huggingface_hub leaves it: refs/main -> snapshot
# of symlinks into blobs/
unset HF_HUB_CACHE HUGGINGFACE_HUB_CACHE
export HF_HOME="$TEST_TMPDIR/hf"
model="$HF_HOME/hub/models--Qwen--Qwen3-30B-A3B"
commit=ad44e777bcd18fa416d9da3bd8f70d33ebb85d39
mkdir -p "$model/blobs" "$model/refs" "$model/snapshots/$commit"
cp tools/alloc_plan/testdata/qwen3-30b-a3b/config.json "$model/blobs/c0nf1g"
ln -s ../../blobs/c0nf1g "$model/snapshots/$commit/config.json"
printf '%s' "$commit" >"$model/refs/main"

fileroot=/shared/areal/experiments  # the example's cluster.fileroot
existed=0; [[ -e "$fileroot/qwen3-30b/t0" ]] && existed=1

# --- the seed's command
seed=(--config examples/qwen3_30b_a3b_megatron.yaml experiment_name=qwen3-30b trial_name=t0
  allocation_mode='sglang:d4t4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)' cluster.n_nodes=4
  cluster.n_gpus_per_node=8 actor.path=Qwen/Qwen3-30B-A3B actor.megatron.use_deterministic_algorithms=True)
out="$TEST_TMPDIR/seed.out"
"$pipeline" "${seed[@]}" pipeline.dry_run=true >"$out" 2>&1 ||
  { cat "$out" >&2; fail "the seed's command was rejected"; }
cat "$out"
expect() { grep -qxF -- "$1" "$out" || fail "the dry run does not print: $1"; }
expect "experiment_name='qwen3-30b'"
expect "trial_name='t0'"
expect "run_dir='$fileroot/qwen3-30b/t0'"
expect "allocation_mode='sglang:d4t4+megatron:p4t2c2e4'"  # canonical: the hybrid form's dims
expect "n_servers='4'"
expect "gpus_per_server='4'"
expect "trainer_ranks='16'"
expect "model_path='$model/snapshots/$commit'"
expect "dry_run='1'"
for stage in trainer server.0 server.1 server.2 server.3 feeder bridge scorer; do
  expect "pipeline: dry run: $stage accepts the configuration"
done
grep -q "nothing started" "$out" || fail "no closing line"
# The trainer accepts the layout but says that it cannot run it yet (tp, cp, pp).
grep -q "pipeline: dry run: trainer: note: it would stop at start: .*tp=2" "$out" ||
  fail "no note that the trainer cannot run this layout yet"
if [[ $existed -eq 0 && -e "$fileroot/qwen3-30b/t0" ]]; then fail "the dry run created $fileroot/qwen3-30b/t0"; fi

# --- the same check rejects what it must (so this test can fail)
bad="$TEST_TMPDIR/bad.out"
if "$pipeline" "${seed[@]/use_deterministic_algorithms/use_deterministic_algorithm}" \
  pipeline.dry_run=true >"$bad" 2>&1; then
  fail "a misspelt key was accepted"
fi
grep -q "use_deterministic_algorithms" "$bad" || { cat "$bad" >&2; fail "the error does not name the closest key"; }
if "$pipeline" "${seed[@]/Qwen3-30B-A3B/Qwen3-235B-A22B}" pipeline.dry_run=true >"$bad" 2>&1; then
  fail "a model that is not in the cache was accepted"
fi
grep -q "hf download Qwen/Qwen3-235B-A22B" "$bad" || { cat "$bad" >&2; fail "no download hint"; }
grep -q "$HF_HOME/hub" "$bad" || { cat "$bad" >&2; fail "the error does not say where it looked"; }
echo "PASS"
