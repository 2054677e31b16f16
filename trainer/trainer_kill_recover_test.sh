#!/bin/bash
# SIGKILL recovery of the trainer binary. A reference run trains STEPS GRPO
# steps uninterrupted (fp32, one thread, saver.freq_steps=1,
# recover.mode=auto) on the batch grpo_step_fixture writes (copied as
# batches 0..STEPS-1). A second run in its own folder is started KILLS times
# with the same settings and SIGKILLed, the kinds of kill in turn, each with
# a seeded random delay: from its start; a few milliseconds after a step
# line (inside the checkpoint write); up to a step after one (training,
# publication); as soon as a hidden weights staging folder, or a first file
# in it, appears (inside a publication); the same for a hidden checkpoint
# staging folder. Then
# it is started once more and runs to the end. Checks:
# - after every kill, recovery_check: each visible checkpoints/step-<N> has a
#   manifest its files match, each visible weights/v<N> is a complete folder,
#   LATEST names one; half-written work is only under hidden names;
# - the final run exits 0 having resumed, and leaves no hidden leftovers;
# - every kept checkpoints/step-<N>/weights/model.safetensors and the last
#   published weights/v<STEPS> (model.safetensors, probe.json) are byte for
#   byte those of the reference run, and so is every file of its optimizer/
#   (moments, masters, state.json); one more step from each final
#   checkpoint gives the same bytes;
# - stats.jsonl holds steps 0..STEPS-1 once each, in order, every value but
#   timeperf/* and wall_time equal to the reference's;
# - TensorBoard (the tensorboard package's reader) shows each step once, with
#   the reference's values.
# A failure prints the seed; the same arguments replay the same delays
# (timing still varies with the machine's load).
#   trainer_kill_recover_test.sh TRAINER FIXTURE RECOVERY_CHECK PYTHON3 MODEL_DIR STEPS KILLS SEED
set -u
trainer=$1 fixture=$2 check=$3 python=$4 model_dir=$5 steps=$6 kills=$7 seed=$8
out=${TEST_TMPDIR:-/tmp}/trainer_kill_recover
rm -rf "$out"; mkdir -p "$out"
fail() { echo "FAIL (seed $seed, $steps steps, $kills kills): $*"; exit 1; }
now_ms() { date +%s%3N; }
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
step_lines() {  # 0 also before the log exists
  local n
  n=$(grep -c '^trainer: step' "$1" 2>/dev/null)
  echo "${n:-0}"
}
echo "seed $seed: $steps steps, $kills kills"
RANDOM=$seed

"$fixture" "$out/fixture" "$model_dir" > "$out/fixture.log" 2>&1 || { cat "$out/fixture.log"; fail "fixture"; }
for trial in straight killed; do
  mkdir -p "$out/runs/kr/$trial/batches"
  for ((i = 0; i < steps; i++)); do
    cp "$out/fixture/oracle/t0/batches/000000.rec" "$(printf '%s/runs/kr/%s/batches/%06d.rec' "$out" "$trial" "$i")"
  done
done
cat > "$out/run.yaml" <<YAML
experiment_name: kr
trial_name: straight
cluster: {fileroot: $out/runs}
actor:
  path: $model_dir
  dtype: float32
  optimizer: {lr: 1.0e-3, weight_decay: 0.01, eps: 1.0e-2, gradient_clipping: 1.0,
              warmup_steps_proportion: 0.0}
  ppo_n_minibatches: 1
  eps_clip: 0.2
  reward_norm: {mean_level: group, std_level: group, group_size: 4}
saver: {freq_steps: 1}
recover: {mode: auto}
trainer: {follow_batches: false, threads: 1, keep_weight_versions: 2}
YAML
ref=$out/runs/kr/straight run=$out/runs/kr/killed

# The reference, timed: start-up (to the first step line) and one step.
t0=$(now_ms)
"$trainer" --config "$out/run.yaml" > "$out/straight.log" 2>&1 &
pid=$!
while (($(step_lines "$out/straight.log") < 1)) && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
t1=$(now_ms)
wait "$pid" || { cat "$out/straight.log"; fail "the reference run exited non-zero"; }
t2=$(now_ms)
startup_ms=$((t1 - t0)) step_ms=$(((t2 - t1) / (steps > 1 ? steps - 1 : 1) + 1))
echo "reference: start-up ${startup_ms} ms, ${step_ms} ms a step"

in_checkpoint=0 in_weights=0 killed=0 attempt=0 where=
while ((killed < kills)); do
  attempt=$((attempt + 1))
  log=$out/killed-$attempt.log
  "$trainer" --config "$out/run.yaml" trial_name=killed > "$log" 2>&1 &
  pid=$!
  kind=$((killed % 5)) lines=$((1 + RANDOM % 2))
  case $kind in
    0) delay=$((RANDOM % (startup_ms + step_ms))) where="ms after start" ;;
    1) delay=$((RANDOM % 30)) where="ms after step line $lines" ;;
    2) delay=$((RANDOM % step_ms)) where="ms after step line $lines" ;;
    3) delay=0 where="weights/.v*.staging-$pid" ;;
    4) delay=0 where="checkpoints/.step-*.staging-$pid" ;;
  esac
  if ((kind >= 3)); then
    ((RANDOM % 2)) && where="$where/*"  # the folder, or its first file
    pattern=$run/$where where="when $where appeared past step line $lines"
  else
    where="$delay $where"
  fi
  if ((kind > 0)); then
    while (($(step_lines "$log") < lines)) && kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
  fi
  if ((kind >= 3)); then
    # Builtins only: a publication of the tiny model takes milliseconds.
    while ! compgen -G "$pattern" > /dev/null && kill -0 "$pid" 2>/dev/null; do :; done
  fi
  ((delay > 0)) && sleep_ms "$delay"
  kill -KILL "$pid" 2>/dev/null
  { wait "$pid"; } 2>/dev/null
  rc=$?
  if ((rc == 0)); then
    echo "attempt $attempt: finished before the kill ($where)"
    break
  fi
  ((rc == 137)) || { cat "$log"; fail "attempt $attempt exited $rc, not by the kill"; }
  killed=$((killed + 1))
  state=$("$check" "$run") || { echo "$state"; cat "$log"; fail "after kill $killed ($where)"; }
  [[ $state == *checkpoints/.step-* ]] && in_checkpoint=$((in_checkpoint + 1))
  [[ $state == *weights/.v* ]] && in_weights=$((in_weights + 1))
  echo "kill $killed: $where, $(step_lines "$log") step line(s); $state"
done
echo "$killed kills, $in_checkpoint inside a checkpoint write, $in_weights inside a weights publication"

"$trainer" --config "$out/run.yaml" trial_name=killed > "$out/final.log" 2>&1 ||
  { cat "$out/final.log"; fail "the final run exited non-zero"; }
if ((killed > 0)); then
  grep -q "resumed from" "$out/final.log" || { cat "$out/final.log"; fail "the final run did not resume"; }
fi
state=$("$check" "$run") || { echo "$state"; fail "after the final run"; }
[[ $state == *"hidden: none" ]] || fail "hidden leftovers after the final run: $state"

[[ $(cat "$run/weights/LATEST") == "$steps" ]] || fail "weights/LATEST is $(cat "$run/weights/LATEST"), want $steps"
for f in model.safetensors probe.json; do
  cmp "$ref/weights/v$steps/$f" "$run/weights/v$steps/$f" || fail "weights/v$steps/$f differs from the reference"
done
# Both runs keep the same newest checkpoints (trainer.keep_checkpoints).
kept=$(cd "$run/checkpoints" && ls -d step-* | sort -V | tr '\n' ' ')
[[ $kept == "$(cd "$ref/checkpoints" && ls -d step-* | sort -V | tr '\n' ' ')" ]] ||
  fail "checkpoints kept: $kept; the reference kept $(ls "$ref/checkpoints")"
[[ $kept == *"step-$steps "* ]] || fail "checkpoints kept: $kept; step-$steps missing"
for d in $kept; do
  cmp "$ref/checkpoints/$d/weights/model.safetensors" "$run/checkpoints/$d/weights/model.safetensors" ||
    fail "checkpoints/$d/weights/model.safetensors differs from the reference"
done
for d in $kept; do
  for f in $(cd "$ref/checkpoints/$d" && find optimizer -type f | sort); do
    cmp "$ref/checkpoints/$d/$f" "$run/checkpoints/$d/$f" || fail "checkpoints/$d/$f differs from the reference"
  done
done
echo "optimizer/: the same files in every kept checkpoint ($kept)"
"$python" - "$ref/stats.jsonl" "$run/stats.jsonl" "$steps" <<'PY' || fail "stats.jsonl (above)"
import json, sys
def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f]
ref, got, steps = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
for name, rows in (("reference", ref), ("killed", got)):
    have = [r["step"] for r in rows]
    assert have == list(range(steps)), f"{name} run's stats.jsonl has steps {have}"
skip = lambda k: k.startswith("timeperf/") or k == "wall_time"
for a, b in zip(ref, got):
    ka, kb = {k for k in a if not skip(k)}, {k for k in b if not skip(k)}
    assert ka == kb, f"step {a['step']}: keys differ: {sorted(ka ^ kb)}"
    diff = [k for k in ka if a[k] != b[k]]
    assert not diff, f"step {a['step']}: " + ", ".join(f"{k}: {a[k]} vs {b[k]}" for k in sorted(diff))
print(f"stats.jsonl: {steps} steps, {len(ka)} values each, equal to the reference")
PY
# TensorBoard shows each step once, the resumed runs' values (each resumed
# trainer's SessionLog START drops the steps it redoes from earlier files).
"$python" - "$ref/tensorboard" "$run/tensorboard" "$steps" <<'PY' || fail "tensorboard (above)"
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
def load(path):
    ea = EventAccumulator(path, size_guidance={"scalars": 0})
    ea.Reload()
    return {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"] if not t.startswith("timeperf/")}
ref, got, steps = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
assert sorted(ref) == sorted(got), f"tags differ: {sorted(set(ref) ^ set(got))}"
for tag in ref:
    assert [s for s, _ in got[tag]] == list(range(steps)), f"{tag}: the killed run shows steps {[s for s, _ in got[tag]]}"
    assert got[tag] == ref[tag], f"{tag}: {got[tag]} vs the reference's {ref[tag]}"
print(f"tensorboard: {len(ref)} tags, steps 0..{steps - 1} once each, equal to the reference")
PY
# One step more from each final checkpoint: the optimizer states act alike.
for trial in straight killed; do
  cp "$out/fixture/oracle/t0/batches/000000.rec" "$(printf '%s/runs/kr/%s/batches/%06d.rec' "$out" "$trial" "$steps")"
  "$trainer" --config "$out/run.yaml" trial_name=$trial > "$out/$trial-more.log" 2>&1 ||
    { cat "$out/$trial-more.log"; fail "one step more on $trial"; }
done
cmp "$ref/weights/v$((steps + 1))/model.safetensors" "$run/weights/v$((steps + 1))/model.safetensors" ||
  fail "one step more from the final checkpoints gives different weights"
echo PASS
