#!/usr/bin/env bash
# Two runs of the main job with the same seed in deterministic mode
# (actor.megatron.use_deterministic_algorithms=true) and the synchronous
# setting (rollout.max_head_offpolicyness=0: each step's batch is the next
# train_dataset.batch_size prompts, generated on that step's weights) must be
# bit-identical: stats.jsonl without its timing keys, every batch file, and
# every published weights/v<N>. The embedded default's two trainer ranks and
# one server; a short run from seeded random weights (no SFT). Rewards are
# then all 0, so group normalisation would zero every advantage and no weight
# would move: reward_norm and adv_norm are off, which leaves a constant
# non-zero advantage and a real update in every step.
set -euo pipefail
pipeline="${TEST_SRCDIR}/moerl/tools/pipeline/pipeline"
python="${TEST_SRCDIR}/libtorch/python3"
[[ -x "$python" ]] || python=python3
root="${TEST_TMPDIR}/runs"
fail() { echo "FAIL: $*" >&2; exit 1; }
settings=(cluster.fileroot="$root" seed=5 actor.megatron.use_deterministic_algorithms=true
  rollout.max_head_offpolicyness=0 pipeline.sft_steps=0 total_train_steps=3
  train_dataset.batch_size=2 actor.ppo_n_minibatches=1 gconfig.n_samples=2 gconfig.max_new_tokens=12
  actor.reward_norm=null actor.adv_norm=null evaluator.freq_steps=null saver.freq_steps=null
  pipeline.report=false pipeline.stage_timeout_s=300)

for trial in first second; do
  "$pipeline" "${settings[@]}" trial_name=$trial >"$TEST_TMPDIR/$trial.out" 2>&1 ||
    { cat "$TEST_TMPDIR/$trial.out" >&2; fail "the $trial run exited non-zero"; }
done
a="$root/moerl-demo/first"
b="$root/moerl-demo/second"

# stats.jsonl: every key but the timing ones, value for value (the JSON
# numbers are written with full precision).
"$python" - "$a/stats.jsonl" "$b/stats.jsonl" <<'PY' || fail "stats.jsonl differs (above)"
import json, sys
def timing(key):  # timeperf/*, wall_time, tokens per second, waits
    return any(part in key for part in ("time", "per_second", "wait", "seconds"))
def rows(path):
    with open(path) as f:
        return [{k: v for k, v in json.loads(line).items() if not timing(k)} for line in f]
first, second = rows(sys.argv[1]), rows(sys.argv[2])
if len(first) != 3 or len(second) != 3:
    sys.exit(f"want 3 steps in each run, got {len(first)} and {len(second)}")
bad = 0
for step, (x, y) in enumerate(zip(first, second)):
    for key in sorted(set(x) | set(y)):
        if x.get(key) != y.get(key):
            print(f"step {step} {key}: {x.get(key)!r} != {y.get(key)!r}", file=sys.stderr)
            bad += 1
skipped = sorted({k for line in open(sys.argv[1]) for k in json.loads(line) if timing(k)})
print(f"stats: {len(first)} steps, {len(first[0])} keys per step compared, {bad} differ; "
      f"timing keys not compared: {', '.join(skipped)}")
sys.exit(1 if bad else 0)
PY

# The batches the trainer read (tokens, log-probs, rewards, versions).
diff -r "$a/batches" "$b/batches" >/dev/null || fail "the batch files differ"
# Published weights: the same versions, byte for byte. The first update must
# have moved them (else this would compare v0 with itself only).
[[ $(cat "$a/weights/LATEST") == 3 && $(cat "$b/weights/LATEST") == 3 ]] || fail "weights/LATEST is not 3"
for v in 1 2 3; do
  diff -r "$a/weights/v$v" "$b/weights/v$v" >/dev/null || fail "weights/v$v differ between the runs"
done
if cmp -s "$a/weights/v1/model.safetensors" "$a/weights/v3/model.safetensors"; then
  fail "the weights did not change between v1 and v3: nothing was trained"
fi
echo "PASS"
