#!/bin/bash
# Faults of the trainer binary on 2 ranks, `megatron:(attn:d2|ffn:e2)`, on
# the batch grpo_step_fixture writes (copied as batches 0..STEPS-1), fp32,
# a checkpoint every step, recover.mode=auto.
#   trainer_rank_faults_test.sh TRAINER FIXTURE PYTHON3 MODEL_DIR STEPS
# 1. A rank killed mid-run (SIGKILL once rank 0 has logged step 1): the two
#    ranks are started here with torchrun's variables (no agent to kill the
#    survivor), and rank 0 must exit non-zero within 60 s with an error that
#    names rank 1.
# 2. The same under torchrun: torchrun must exit non-zero, not hang.
# 3. torchrun --max-restarts 1: rank 1 is SIGKILLed after step 1 (plus a
#    random 0-100 ms: inside a step, a publication or a checkpoint); torchrun
#    restarts both workers, they resume from a checkpoint before the last
#    step and finish; the final weights are byte for byte those of an
#    uninterrupted 2-rank run.
set -u
trainer=$1 fixture=$2 python=$3 model_dir=$4 steps=$5
out=${TEST_TMPDIR:-/tmp}/trainer_rank_faults
rm -rf "$out"; mkdir -p "$out"
layout='sglang:d1+megatron:(attn:d2|ffn:e2)'
fail() { echo "FAIL: $*"; for f in "$out"/*.log; do echo "--- $f"; tail -n 30 "$f"; done; exit 1; }
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
step_lines() { local n; n=$(grep -c 'trainer: step' "$1" 2>/dev/null); echo "${n:-0}"; }
wait_steps() {  # wait_steps LOG N PID: until LOG has N step lines or PID is gone
  while (($(step_lines "$1") < $2)) && kill -0 "$3" 2>/dev/null; do sleep 0.02; done
}
# The trainer process of `rank` among the descendants of `parent`.
worker_pid() {
  local parent=$1 rank=$2 p
  for p in $(pgrep -P "$parent"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "RANK=$rank"; then
      [[ $(readlink "/proc/$p/exe") == "$(readlink -f "$trainer")" ]] && { echo "$p"; return; }
    fi
    worker_pid "$p" "$rank" && return
  done
  return 1
}

"$fixture" "$out/fixture" "$model_dir" > "$out/fixture.log" 2>&1 || fail "fixture"
for trial in straight killed killed_torchrun restarted; do
  mkdir -p "$out/runs/faults/$trial/batches"
  for ((i = 0; i < steps; i++)); do
    cp "$out/fixture/oracle/t0/batches/000000.rec" "$(printf '%s/runs/faults/%s/batches/%06d.rec' "$out" "$trial" "$i")"
  done
done
cat > "$out/run.yaml" <<YAML
experiment_name: faults
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
torchrun() { "$python" -m torch.distributed.run --no-python --nproc-per-node 2 --master-port "$(free_port)" "$@"; }

# The uninterrupted reference.
torchrun "$trainer" --config "$out/run.yaml" "+allocation_mode=$layout" > "$out/straight.log" 2>&1 ||
  fail "the uninterrupted run exited non-zero"
ref=$out/runs/faults/straight/weights/v$steps/model.safetensors
[[ -f $ref ]] || fail "the uninterrupted run did not publish v$steps"

# 1. Without an agent: the survivor names the dead rank.
port=$(free_port)
for rank in 0 1; do
  RANK=$rank WORLD_SIZE=2 LOCAL_RANK=$rank LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$trainer" --config "$out/run.yaml" trial_name=killed "+allocation_mode=$layout" > "$out/rank$rank.log" 2>&1 &
  pids[$rank]=$!
done
wait_steps "$out/rank0.log" 1 "${pids[0]}"
kill -KILL "${pids[1]}"
start=$SECONDS
wait "${pids[0]}" && fail "rank 0 succeeded although rank 1 was killed"
elapsed=$((SECONDS - start))
((elapsed < 60)) || fail "rank 0 took ${elapsed}s to fail"
grep -q "rank 1 stopped sending heartbeats" "$out/rank0.log" || fail "rank 0's error does not name rank 1"
echo "1. rank 1 killed: rank 0 failed after ${elapsed}s: $(grep -m1 'stopped sending heartbeats' "$out/rank0.log" | cut -c1-300)"

# 2. Under torchrun without restarts: torchrun exits non-zero.
torchrun "$trainer" --config "$out/run.yaml" trial_name=killed_torchrun "+allocation_mode=$layout" \
  > "$out/killed_torchrun.log" 2>&1 &
tr_pid=$!
wait_steps "$out/killed_torchrun.log" 1 "$tr_pid"
victim=$(worker_pid "$tr_pid" 1) || fail "no rank 1 worker under torchrun"
kill -KILL "$victim"
start=$SECONDS
wait "$tr_pid" && fail "torchrun exited 0 although rank 1 was killed"
elapsed=$((SECONDS - start))
((elapsed < 60)) || fail "torchrun took ${elapsed}s to exit"
echo "2. under torchrun: exited non-zero ${elapsed}s after the kill"

# 3. torchrun --max-restarts 1 resumes from the last checkpoint.
torchrun --max-restarts 1 "$trainer" --config "$out/run.yaml" trial_name=restarted "+allocation_mode=$layout" \
  > "$out/restarted.log" 2>&1 &
tr_pid=$!
wait_steps "$out/restarted.log" 1 "$tr_pid"
sleep "0.$(printf '%03d' $((RANDOM % 100)))"
victim=$(worker_pid "$tr_pid" 1) || fail "no rank 1 worker under torchrun"
kill -KILL "$victim"
wait "$tr_pid" || fail "torchrun --max-restarts 1 exited non-zero"
resumed=$(grep -m1 -o 'resumed from .* (step [0-9]*' "$out/restarted.log") ||
  fail "the restarted workers did not resume from a checkpoint"
((${resumed##* } < steps)) || fail "the kill came too late: $resumed of $steps"
cmp "$ref" "$out/runs/faults/restarted/weights/v$steps/model.safetensors" ||
  fail "the restarted run's v$steps differs from the uninterrupted run's"
echo "3. restarted after a kill: $resumed of $steps); v$steps equal byte for byte"
echo PASS
