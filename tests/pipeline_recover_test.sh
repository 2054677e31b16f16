#!/usr/bin/env bash
# recover.mode=auto under faults: one run of the embedded default (two
# trainer ranks through torchrun, one server) is interrupted by SIGKILL of one
# process of each stage kind named in the arguments (server, bridge, scorer,
# trainer_rank), in turn; after each kill the pipeline must exit 1 naming the
# stage, and the same command with recover.mode=auto resumes it. The last
# resume runs to the end. Then group ids are counted from the feeder to the
# trained batches (docs/pipeline.md, "Resuming a run"):
#   - a resumed trainer continues at its checkpoint's step k with batch file k
#     and republishes v<k> (the servers start from it); stats.jsonl ends with
#     one line per step of the final history;
#   - a resumed feeder publishes no group that was already in a batch file
#     (those are trained from the files, not generated again);
#   - every group an interrupted attempt published is either in a batch file
#     or published again by the next attempt (nothing in flight is lost);
#   - the batch files the final trainer history trained, 000000.rec up to
#     total_train_steps - 1, hold each group id once, all published by the
#     feeder, train_dataset.batch_size of them per file.
# The feeder logs every group it publishes (dataset.progress_every=1).
set -euo pipefail
pipeline="${TEST_SRCDIR}/moerl/tools/pipeline/pipeline"
inspect="${TEST_SRCDIR}/moerl/tools/inspect/inspect"
root="${TEST_TMPDIR}/runs"
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ $# -ge 1 ]] || fail "usage: pipeline_recover_test.sh <stage kind>... (server, bridge, scorer, trainer_rank)"
kinds=("$@")
# Each attempt is killed two steps past the newest step before it; a resumed
# trainer redoes at most one step (saver.freq_steps=2): 4 steps an attempt
# leave room for stopping late.
steps=$((4 + 4 * ${#kinds[@]}))
batch_size=2
trial=recover
run="$root/moerl-demo/$trial"
tmp="$TEST_TMPDIR/count"
mkdir -p "$tmp"
cmd=(cluster.fileroot="$root" trial_name="$trial" total_train_steps="$steps" gconfig.n_samples=2
  train_dataset.batch_size="$batch_size" actor.ppo_n_minibatches=1 gconfig.max_new_tokens=12
  pipeline.stage_timeout_s=240 evaluator.freq_steps=null pipeline.sft_steps=0 saver.freq_steps=2
  dataset.progress_every=1 pipeline.report=false)

wait_for() {  # seconds, command...: polls until the command succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [[ $SECONDS -lt $deadline ]] || return 1; sleep 0.2; done
}
last_step() {  # the step of the newest line of stats.jsonl, -1 without one
  local s=""
  [[ -f "$run/stats.jsonl" ]] && s=$(tail -n 1 "$run/stats.jsonl" | grep -o '"step": *[0-9]*' | grep -o '[0-9]*$')
  echo "${s:--1}"
}
step_at_least() { [[ $(last_step) -ge $1 ]]; }
batch_groups() {  # file: its group ids, one a line, sorted
  "$inspect" "$1" --type=moerl.proto.TrajectoryBatch >"$tmp/inspect.txt" || fail "inspect $1: $(cat "$tmp/inspect.txt")"
  sed -n 's/^ *group_id: "\(.*\)"$/\1/p' "$tmp/inspect.txt" | sort -u
}
done_groups() {  # the group ids in batches/000000.rec, 000001.rec, ... (to the first gap)
  local i=0 f
  while f=$(printf '%s/batches/%06d.rec' "$run" "$i") && [[ -f "$f" ]]; do batch_groups "$f"; i=$((i + 1)); done | sort
}
stage_pid() {  # kind: the pid of one process of that kind
  case "$1" in
    server) pgrep -f -- "rollout/server/server .*trial_name=$trial" | head -n 1 ;;
    bridge) pgrep -f -- "rollout/rollout_bridge .*trial_name=$trial" | head -n 1 ;;
    scorer) pgrep -f -- "reward/reward_scorer .*trial_name=$trial" | head -n 1 ;;
    trainer_rank)  # rank 1 (torchrun's command line names the trainer too: skip it)
      local pid
      for pid in $(pgrep -f -- "^[^ ]*/trainer/trainer .*trial_name=$trial"); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "RANK=1"; then echo "$pid"; return; fi
      done ;;
  esac
}
stage_name() {  # kind: how the pipeline names it
  case "$1" in server) echo server.0 ;; trainer_rank) echo trainer ;; *) echo "$1" ;; esac
}

attempt=0
feeder_line=0
trainer_line=0
resume=()
for kind in "${kinds[@]}" final; do
  done_groups >"$tmp/done.$attempt"
  [[ -f "$run/logs/feeder.log" ]] && feeder_line=$(wc -l <"$run/logs/feeder.log")
  [[ -f "$run/logs/trainer.log" ]] && trainer_line=$(wc -l <"$run/logs/trainer.log")
  before=$(last_step)
  out="$TEST_TMPDIR/attempt.$attempt.out"
  "$pipeline" "${cmd[@]}" "${resume[@]}" >"$out" 2>&1 &
  pid=$!
  if [[ $kind == final ]]; then
    status=0; wait "$pid" || status=$?
    [[ $status -eq 0 ]] || { cat "$out" >&2; fail "the last resume exited $status"; }
  else
    wait_for 300 step_at_least $((before + 2)) || { cat "$out" >&2; fail "attempt $attempt: no step $((before + 2)) within 300 s"; }
    kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; fail "attempt $attempt: the run ended before the kill"; }
    victim=$(stage_pid "$kind")
    [[ -n "$victim" ]] || fail "attempt $attempt: no $kind process found"
    echo "attempt $attempt: SIGKILL to the $kind (pid $victim) at step $(last_step), $(ls "$run/batches" | grep -c '\.rec$') batch files"
    kill -KILL "$victim"
    status=0; wait "$pid" || status=$?
    [[ $status -eq 1 ]] || { cat "$out" >&2; fail "the pipeline exited $status after the $kind was killed, want 1"; }
    grep -q "stage '$(stage_name "$kind")' " "$out" || { cat "$out" >&2; fail "the failure does not name the $kind"; }
  fi
  # A resumed trainer continues at its checkpoint's step k with batch file k
  # and first republishes v<k>, the weights the servers then start from.
  if [[ $attempt -gt 0 ]]; then
    tail -n +"$((trainer_line + 1))" "$run/logs/trainer.log" >"$tmp/trainer.$attempt"
    resumed=$(sed -n 's/.*resumed from .* (step \([0-9]*\), data position \([0-9]*\)\/\([0-9]*\)).*/\1 \3/p' "$tmp/trainer.$attempt" | sort -u)
    k=0
    if [[ -n "$resumed" ]]; then
      [[ $(wc -l <<<"$resumed") -eq 1 ]] || fail "attempt $attempt: the ranks resumed differently: $resumed"
      read -r k index <<<"$resumed"
      [[ $index -eq $k ]] || fail "attempt $attempt: resumed at step $k but batch file $index"
    fi
    grep -q "published weights v$k to" "$tmp/trainer.$attempt" ||
      fail "attempt $attempt: the trainer resumed at step $k did not republish v$k"
    echo "attempt $attempt: the trainer resumed at step $k with $(wc -l <"$tmp/done.$attempt") groups in batch files"
  fi
  tail -n +"$((feeder_line + 1))" "$run/logs/feeder.log" |
    sed -n 's/.*published [0-9]* prompts (epoch [0-9]*, index [0-9]*, group \(.*\))$/\1/p' | sort >"$tmp/issued.$attempt"
  [[ -s "$tmp/issued.$attempt" ]] || fail "attempt $attempt: the feeder logged no published group"
  [[ -z "$(sort "$tmp/issued.$attempt" | uniq -d | head -n 3)" ]] || fail "attempt $attempt: the feeder published a group twice"
  # Not generated again: nothing already in a batch file.
  again=$(comm -12 "$tmp/issued.$attempt" "$tmp/done.$attempt" | head -n 3)
  [[ -z "$again" ]] || fail "attempt $attempt republished groups already in batch files: $again"
  # Not lost: what the previous attempt published is in a batch file or published again.
  if [[ $attempt -gt 0 ]]; then
    sort -u "$tmp/issued.$attempt" "$tmp/done.$attempt" >"$tmp/covered"
    lost=$(comm -23 "$tmp/issued.$((attempt - 1))" "$tmp/covered" | head -n 3)
    [[ -z "$lost" ]] || fail "groups published by attempt $((attempt - 1)) are lost: $lost"
  fi
  resume=(recover.mode=auto)
  attempt=$((attempt + 1))
done

# The final history trained batch files 0 .. steps-1.
[[ $(cat "$run/weights/LATEST") == "$steps" ]] || fail "weights/LATEST is '$(cat "$run/weights/LATEST")', want $steps"
# stats.jsonl: the final history's steps, once each (redone steps replace
# the discarded lines).
stat_steps=$(grep -o '"step": *[0-9]*' "$run/stats.jsonl" | grep -o '[0-9]*$' | tr '\n' ' ')
[[ "$stat_steps" == "$(seq -s ' ' 0 $((steps - 1))) " ]] || fail "stats.jsonl steps: $stat_steps"
: >"$tmp/trained"
for ((i = 0; i < steps; i++)); do
  f=$(printf '%s/batches/%06d.rec' "$run" "$i")
  [[ -f "$f" ]] || fail "no batch file $f"
  batch_groups "$f" >"$tmp/file"
  [[ $(wc -l <"$tmp/file") -eq $batch_size ]] || fail "$f holds $(wc -l <"$tmp/file") groups, want $batch_size"
  cat "$tmp/file" >>"$tmp/trained"
done
twice=$(sort "$tmp/trained" | uniq -d | head -n 3)
[[ -z "$twice" ]] || fail "groups trained twice: $twice"
sort -u "$tmp"/issued.* >"$tmp/issued.all"
unknown=$(sort "$tmp/trained" | comm -23 - "$tmp/issued.all" | head -n 3)
[[ -z "$unknown" ]] || fail "trained groups the feeder never published: $unknown"
echo "PASS: ${#kinds[@]} kill(s) (${kinds[*]}), $attempt attempts; $(wc -l <"$tmp/trained") groups trained once each in $steps batch files"
