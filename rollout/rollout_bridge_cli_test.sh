#!/usr/bin/env bash
# rollout_bridge as a user runs it: rings made with `ring`, prompts from
# dataset_feeder, a fake SGLang server process by address, weights/LATEST in
# the run folder; then SIGTERM, and configuration errors.
set -euo pipefail
root="${TEST_SRCDIR}/moerl"
bridge="$root/rollout/rollout_bridge"
feeder="$root/dataset/dataset_feeder"
server="$root/rollout/testing/fake_sglang_server"
ring="$root/tools/ring/ring"
tmp="${TEST_TMPDIR}"
exp="bridgecli$$"
fail() { echo "FAIL: $*" >&2; exit 1; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for hop in prompts trajectories idle; do "$ring" remove "$exp.t0.$hop" 2>/dev/null || true; done
}
trap cleanup EXIT

"$server" --port_file="$tmp/port" & pids+=($!)
for _ in $(seq 100); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
port=$(cat "$tmp/port")

cat > "$tmp/run.yaml" <<YAML
experiment_name: $exp
trial_name: t0
cluster: {fileroot: $tmp/runs}
train_dataset: {path: $root/dataset/testdata/sample.jsonl, batch_size: 1}
gconfig: {n_samples: 3, max_new_tokens: 8, max_tokens: 4096}
rollout: {consumer_batch_size: 2, max_head_offpolicyness: 2, setup_timeout: 10}
YAML
mkdir -p "$tmp/runs/$exp/t0/weights/v0"
echo 0 > "$tmp/runs/$exp/t0/weights/LATEST"

"$ring" create "$exp.t0.prompts" --mode=ack --capacity_bytes=1048576
"$ring" create "$exp.t0.trajectories" --mode=ack --capacity_bytes=4194304
"$feeder" --config "$tmp/run.yaml" +dataset.ring="$exp.t0.prompts" 2> "$tmp/feeder.log" \
  || fail "feeder: $(cat "$tmp/feeder.log")"
"$bridge" --config "$tmp/run.yaml" +rollout.server_addrs="127.0.0.1:$port" 2> "$tmp/bridge.log" \
  || fail "bridge: $(cat "$tmp/bridge.log")"
grep -q "5 groups pushed (5 prompts taken, 15 requests" "$tmp/bridge.log" || fail "$(cat "$tmp/bridge.log")"
"$ring" stat "$exp.t0.trajectories" --json > "$tmp/stat.json"
grep -q '"pushed": *5' "$tmp/stat.json" || fail "expected 5 group messages: $(cat "$tmp/stat.json")"
"$ring" stat "$exp.t0.prompts" --json > "$tmp/pstat.json"
grep -q '"acked": *5' "$tmp/pstat.json" || fail "expected 5 prompts acknowledged: $(cat "$tmp/pstat.json")"

# SIGTERM while waiting for prompts: a clean stop, exit 0.
"$ring" create "$exp.t0.idle" --mode=ack
"$bridge" --config "$tmp/run.yaml" +rollout.server_addrs="127.0.0.1:$port" \
  +rollout.prompt_ring="$exp.t0.idle" +rollout.trajectory_ring="$exp.t0.trajectories" \
  2> "$tmp/stop.log" & bpid=$!
for _ in $(seq 100); do grep -q "version 0 loaded" "$tmp/stop.log" && break; sleep 0.1; done
kill -TERM "$bpid"
wait "$bpid" || fail "SIGTERM gave a non-zero exit: $(cat "$tmp/stop.log")"
grep -q "stop requested" "$tmp/stop.log" || fail "$(cat "$tmp/stop.log")"

# Configuration errors: one line naming the key, exit 1.
if "$bridge" --config "$tmp/run.yaml" 2> "$tmp/err1"; then fail "no servers accepted"; fi
grep -q "rollout.server_addrs" "$tmp/err1" || fail "$(cat "$tmp/err1")"
[[ $(wc -l < "$tmp/err1") -eq 1 ]] || fail "expected one line: $(cat "$tmp/err1")"
# No server at the address: named in the error after setup_timeout.
if "$bridge" --config "$tmp/run.yaml" +rollout.server_addrs=127.0.0.1:1 rollout.setup_timeout=1 \
  2> "$tmp/err2"; then fail "dead server accepted"; fi
grep -q "127.0.0.1:1" "$tmp/err2" || fail "$(cat "$tmp/err2")"
echo PASS
