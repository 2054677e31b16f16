#!/usr/bin/env bash
# dataset_feeder -> ShmRing -> stand-in bridge -> ShmRing (acknowledged) ->
# reward_scorer, each a separate process, as the pipeline script runs them.
set -euo pipefail
root="${TEST_SRCDIR}/moerl"
feeder="$root/dataset/dataset_feeder"
scorer="$root/reward/reward_scorer"
bridge="$root/reward/testing/stand_in_bridge_bin"
ring="$root/tools/ring/ring"
inspect="$root/tools/inspect/inspect"
tmp="${TEST_TMPDIR}"
fail() { echo "FAIL: $*" >&2; exit 1; }

# Ring names unique to this test and process; removed whatever happens.
prompts="ringtest.process_$$.prompts"
trajectories="ringtest.process_$$.trajectories"
cleanup() {
  "$ring" remove "$prompts" >/dev/null 2>&1 || true
  "$ring" remove "$trajectories" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$ring" create "$prompts" --capacity_bytes=1048576 --mode=plain --owner_pid=$$
"$ring" create "$trajectories" --capacity_bytes=1048576 --mode=ack --owner_pid=$$

cat > "$tmp/run.yaml" <<YAML
experiment_name: ringtest
trial_name: process
total_train_epochs: 2
cluster:
  fileroot: $tmp/runs
gconfig:
  n_samples: 3
train_dataset:
  path: $root/dataset/testdata/sample.jsonl
  batch_size: 4
  drop_last: false
YAML

"$scorer" --config "$tmp/run.yaml" +reward.ring="$trajectories" 2> "$tmp/scorer.log" &
scorer_pid=$!
"$bridge" "$prompts" "$trajectories" 3 2> "$tmp/bridge.log" &
bridge_pid=$!
"$feeder" --config "$tmp/run.yaml" +dataset.ring="$prompts" 2> "$tmp/feeder.log" \
  || fail "feeder: $(cat "$tmp/feeder.log")"
wait "$bridge_pid" || fail "bridge: $(cat "$tmp/bridge.log")"
wait "$scorer_pid" || fail "scorer: $(cat "$tmp/scorer.log")"

grep -q "10 prompts published" "$tmp/feeder.log" || fail "$(cat "$tmp/feeder.log")"
grep -q "10 prompts -> 30 trajectories" "$tmp/bridge.log" || fail "$(cat "$tmp/bridge.log")"
grep -q "30 trajectories scored ( match=10 mismatch=20 ), 10 groups in 3 batches" \
  "$tmp/scorer.log" || fail "$(cat "$tmp/scorer.log")"

# Batches land in <fileroot>/<experiment>/<trial>/batches as numbered record files.
batches="$tmp/runs/ringtest/process/batches"
[[ -f "$batches/000000.rec" && -f "$batches/000001.rec" && -f "$batches/000002.rec" ]] \
  || fail "batch files: $(ls -la "$batches" 2>&1)"
[[ ! -e "$batches/000003.rec" ]] || fail "an extra batch file"
"$inspect" "$batches/000002.rec" --type=moerl.proto.TrajectoryBatch > "$tmp/last.txt" \
  || fail "inspect: $(cat "$tmp/last.txt")"
[[ $(grep -c "reward: 1" "$tmp/last.txt") -eq 2 ]] || fail "last batch: $(cat "$tmp/last.txt")"
grep -q "batch_index: 2" "$tmp/last.txt" || fail "last batch: $(head -5 "$tmp/last.txt")"

# Every trajectory was acknowledged: nothing waits in the ring.
"$ring" stat "$trajectories" --json > "$tmp/stat.json"
grep -q '"in_flight": *0' "$tmp/stat.json" || fail "$(cat "$tmp/stat.json")"
echo "ring pipeline across processes: OK"
