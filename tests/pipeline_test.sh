#!/usr/bin/env bash
# The main job end to end, as a user runs it: `pipeline` with small settings
# (a 2-step SFT warm-up, 2 GRPO steps), then the ways it must stop:
#   1. a complete run: exit 0, stats and weights for every step, the report,
#      no shared-memory ring and no stage process left;
#   2. a second pipeline on the same run folder is refused while the first runs;
#   3. a stage killed with SIGKILL (the bridge): exit 1 naming the stage,
#      every other stage stopped, the rings removed;
#   4. SIGINT: exit 130, every stage stopped, the rings removed.
set -euo pipefail
pipeline="${TEST_SRCDIR}/moerl/tools/pipeline/pipeline"
root="${TEST_TMPDIR}/runs"
fail() { echo "FAIL: $*" >&2; exit 1; }
small=(cluster.fileroot="$root" total_train_steps=2 gconfig.n_samples=2 train_dataset.batch_size=2 actor.ppo_n_minibatches=1
  gconfig.max_new_tokens=12 pipeline.stage_timeout_s=240 evaluator.freq_steps=null)

stage_processes() {  # stage processes of runs under $root
  pgrep -f -- "cluster.fileroot=$root" | grep -v "^$$\$" || true
}
rings_left() {  # ShmRing segments of this test's experiment
  ls /dev/shm 2>/dev/null | grep -c "moerl-demo\.$1\." || true
}
wait_for() {  # seconds, command...: polls until the command succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [[ $SECONDS -lt $deadline ]] || return 1; sleep 0.5; done
}

# 1. A complete run.
"$pipeline" "${small[@]}" trial_name=ok pipeline.sft_steps=2 >"$TEST_TMPDIR/ok.out" 2>&1 ||
  { cat "$TEST_TMPDIR/ok.out" >&2; fail "the complete run exited non-zero"; }
run="$root/moerl-demo/ok"
[[ $(wc -l <"$run/stats.jsonl") -eq 2 ]] || fail "stats.jsonl has $(wc -l <"$run/stats.jsonl") lines, want 2"
[[ $(cat "$run/weights/LATEST") == 2 ]] || fail "weights/LATEST is '$(cat "$run/weights/LATEST")', want 2"
[[ -s "$run/report/index.md" && -s "$run/report/reward.png" ]] || fail "no report in $run/report"
grep -Eq "^step 1/2 reward .* eta 0m00s$" "$TEST_TMPDIR/ok.out" || { cat "$TEST_TMPDIR/ok.out" >&2; fail "no progress line for step 1"; }
grep -q "RL starts from $root/moerl-demo/ok.sft/weights/v2" "$TEST_TMPDIR/ok.out" ||
  fail "RL did not start from the SFT weights"
[[ $(rings_left ok) -eq 0 ]] || fail "rings left in /dev/shm after a complete run"
[[ -z "$(stage_processes)" ]] || fail "stage processes left after a complete run: $(stage_processes)"

# 2 and 3. A long run: a second pipeline on its folder is refused; then its
# bridge is killed.
"$pipeline" "${small[@]}" trial_name=kill pipeline.sft_steps=0 total_train_steps=1000 \
  >"$TEST_TMPDIR/kill.out" 2>&1 &
first=$!
run="$root/moerl-demo/kill"
wait_for 240 test -s "$run/stats.jsonl" || { cat "$TEST_TMPDIR/kill.out" >&2; fail "no training step within 240 s"; }
if "$pipeline" "${small[@]}" trial_name=kill pipeline.sft_steps=0 >"$TEST_TMPDIR/second.out" 2>&1; then
  fail "a second pipeline on a live run folder was accepted"
fi
grep -q "holds a live run (pid $first)" "$TEST_TMPDIR/second.out" ||
  { cat "$TEST_TMPDIR/second.out" >&2; fail "the refusal does not name the live run"; }
bridge_pid=$(pgrep -f -- "rollout_bridge.*trial_name=kill" | head -n 1)
[[ -n "$bridge_pid" ]] || fail "no bridge process found"
kill -KILL "$bridge_pid"
status=0; wait "$first" || status=$?
[[ $status -eq 1 ]] || { cat "$TEST_TMPDIR/kill.out" >&2; fail "pipeline exited $status after the bridge died, want 1"; }
grep -q "stage 'bridge' exited" "$TEST_TMPDIR/kill.out" ||
  { cat "$TEST_TMPDIR/kill.out" >&2; fail "the failure does not name the bridge"; }
[[ $(rings_left kill) -eq 0 ]] || fail "rings left after a stage failure"
wait_for 30 test -z "$(stage_processes)" || fail "stage processes left after a stage failure: $(stage_processes)"

# 4. SIGINT, as Ctrl-C sends it. Job control on: a background job of a
# non-interactive shell would otherwise start with SIGINT ignored.
set -m
"$pipeline" "${small[@]}" trial_name=int pipeline.sft_steps=0 total_train_steps=1000 \
  >"$TEST_TMPDIR/int.out" 2>&1 &
first=$!
wait_for 240 test -s "$root/moerl-demo/int/stats.jsonl" || { cat "$TEST_TMPDIR/int.out" >&2; fail "no training step within 240 s"; }
kill -INT "$first"
status=0; wait "$first" || status=$?
[[ $status -eq 130 ]] || { cat "$TEST_TMPDIR/int.out" >&2; fail "pipeline exited $status after SIGINT, want 130"; }
[[ $(rings_left int) -eq 0 ]] || fail "rings left after SIGINT"
wait_for 30 test -z "$(stage_processes)" || fail "stage processes left after SIGINT: $(stage_processes)"
echo "PASS"
