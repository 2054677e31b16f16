#!/usr/bin/env bash
# A stage that hangs is named: for each stage given, run the embedded default
# with small settings and a short pipeline.stage_timeout_s, wait for the
# first training step, stop that one stage's process with SIGSTOP (it stays
# alive, holds its rings and sockets, and makes no progress), and check that
# the pipeline exits 1 naming that stage as hung within the timeout plus
# slack, and leaves no stage process and no ring behind.
#
#   pipeline_hang_test.sh <stage_timeout_s> <stage>...   stage: bridge scorer server.0 trainer
#
# The stopped process is continued (SIGCONT) once the pipeline exits, and on
# every exit of this script, so that the TERM it was sent ends it.
set -euo pipefail
pipeline="${TEST_SRCDIR}/moerl/tools/pipeline/pipeline"
root="${TEST_TMPDIR}/runs"
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || fail "usage: $0 <stage_timeout_s> <stage>..."
timeout_s=$1; shift
slack_s=45  # a check a second, the slowest probe (30 s), the pipeline's own cleanup not counted
small=(cluster.fileroot="$root" total_train_steps=1000 gconfig.n_samples=2 train_dataset.batch_size=2
  actor.ppo_n_minibatches=1 gconfig.max_new_tokens=12 evaluator.freq_steps=null pipeline.sft_steps=0
  pipeline.report=false pipeline.stage_timeout_s="$timeout_s")

stopped=""
pipeline_pid=""
on_exit() {
  [[ -z "$stopped" ]] || kill -CONT "$stopped" 2>/dev/null || true
  [[ -z "$pipeline_pid" ]] || kill -TERM "$pipeline_pid" 2>/dev/null || true
}
trap on_exit EXIT

stage_processes() {  # stage processes of runs under $root
  pgrep -f -- "cluster.fileroot=$root" | grep -v "^$$\$" || true
}
rings_left() {  # ShmRing segments of a trial
  ls /dev/shm 2>/dev/null | grep -c "moerl-demo\.$1\." || true
}
wait_for() {  # seconds, command...: polls until the command succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [[ $SECONDS -lt $deadline ]] || return 1; sleep 0.5; done
}
stage_pid() {  # stage, trial -> the pid to stop (for the trainer: one rank, not torchrun)
  local binary
  case "$1" in
    bridge) binary=rollout/rollout_bridge ;;
    scorer) binary=reward/reward_scorer ;;
    server.*) binary=rollout/server/server ;;
    trainer) binary=trainer/trainer ;;
    *) fail "unknown stage '$1'" ;;
  esac
  local pid
  for pid in $(pgrep -f -- "$binary .*trial_name=$2( |$)" || true); do
    # torchrun's command line names the trainer too; a rank runs the binary itself.
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */$binary ]] || continue
    if [[ $1 == server.* ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "/$1\.address"; then continue; fi
    echo "$pid"
    return 0
  done
}

for stage in "$@"; do
  trial="hang_${stage/./_}"
  out="$TEST_TMPDIR/$trial.out"
  "$pipeline" "${small[@]}" trial_name="$trial" >"$out" 2>&1 &
  pipeline_pid=$!
  deadline=$((SECONDS + 300))
  until test -s "$root/moerl-demo/$trial/stats.jsonl"; do
    kill -0 "$pipeline_pid" 2>/dev/null || { cat "$out" >&2; fail "$stage: the pipeline ended before a training step"; }
    [[ $SECONDS -lt $deadline ]] || { cat "$out" >&2; fail "$stage: no training step within 300 s"; }
    sleep 0.5
  done
  stopped=$(stage_pid "$stage" "$trial")
  [[ -n "$stopped" ]] || { cat "$out" >&2; fail "$stage: no process found"; }
  kill -STOP "$stopped"
  stop_time=$SECONDS
  echo "stopped $stage (pid $stopped)"
  status=0; wait "$pipeline_pid" || status=$?
  pipeline_pid=""
  took=$((SECONDS - stop_time))
  kill -CONT "$stopped" 2>/dev/null || true
  echo "$stage: the pipeline exited $status after ${took}s (timeout ${timeout_s}s)"
  grep "hangs" "$out" || true
  [[ $status -eq 1 ]] || { cat "$out" >&2; fail "$stage: the pipeline exited $status, want 1"; }
  grep -q "stage '$stage' hangs" "$out" || { cat "$out" >&2; fail "$stage: the pipeline did not name '$stage' as hung"; }
  # The pipeline's own cleanup (TERM, 20 s grace, KILL) comes after the verdict.
  [[ $took -le $((timeout_s + slack_s + 25)) ]] ||
    fail "$stage: the pipeline took ${took}s to name it, want <= timeout ${timeout_s}s + ${slack_s}s + cleanup"
  wait_for 30 test -z "$(stage_processes)" || fail "$stage: stage processes left: $(stage_processes)"
  stopped=""
  [[ $(rings_left "$trial") -eq 0 ]] || fail "$stage: rings left in /dev/shm"
done
echo "PASS"
