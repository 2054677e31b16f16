#!/usr/bin/env bash
# The pipeline under scheduler.type=ray on a Ray cluster of one node started
# here (a head with 2 CPUs, its own temporary folder and ports): a short run
# (2 SFT steps, 2 GRPO steps) must exit 0 with weights/LATEST at the last
# step, every stage's log, each stage started as a Ray actor (the launcher's
# line naming the node and actor in the stage's log, rank lines for the two
# trainer ranks), and afterwards no placement group, stage process or ring
# left; then the same after SIGINT (exit 130). The head is then stopped by
# the pids of its own processes (`ray stop` would end every Ray process of
# the user on the machine).
set -euo pipefail
pipeline="${TEST_SRCDIR}/moerl/tools/pipeline/pipeline"
python="$1"
ray_env="$(head -n1 "$2")"
root="${TEST_TMPDIR}/runs"
fail() { echo "FAIL: $*" >&2; exit 1; }
if [[ -z "$ray_env" || ! -f "$ray_env/ray/__init__.py" ]]; then
  fail "Ray is not installed in '${ray_env}'; run tools/setup.sh (then 'bazel sync --configure' if Bazel looked before it was there)"
fi
export MOERL_RAY_ENV="$ray_env"

# Ray's unix sockets must fit in 107 bytes: a short folder, not TEST_TMPDIR.
ray_tmp=$(mktemp -d /tmp/moerl-ray.XXXXXX)
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'; }
ray_cli() { PYTHONPATH="$ray_env" "$python" "$ray_env/bin/ray" "$@"; }
head_processes() {  # the head's processes (their command lines name its folder) and their children
  local pids p
  pids=$(pgrep -f -- "$ray_tmp/" || true)
  for p in $pids; do echo "$p"; pgrep -P "$p" || true; done
}
head_pids=""
alive() { local p; for p in $head_pids; do kill -0 "$p" 2>/dev/null && echo "$p"; done; return 0; }
stop_head() {  # TERM, then KILL after 20 s, to the pids taken before any dies
  head_pids=$(head_processes | sort -u | tr '\n' ' ')
  [[ -n "$head_pids" ]] && kill -TERM $head_pids 2>/dev/null || true
  for _ in $(seq 1 40); do [[ -z "$(alive)" ]] && break; sleep 0.5; done
  [[ -n "$(alive)" ]] && kill -KILL $(alive) 2>/dev/null || true
  sleep 1
  rm -rf "$ray_tmp"
}
trap stop_head EXIT

# Ray gives its raylet a fixed 30 s to register, which a loaded 2-core
# machine can miss: up to three tries, each in a fresh folder.
for try in 1 2 3; do
  port=$(free_port)
  if ray_cli start --head --num-cpus=2 --include-dashboard=false --disable-usage-stats \
    --temp-dir="$ray_tmp" --port="$port" --dashboard-port="$(free_port)" \
    --dashboard-agent-listen-port="$(free_port)" --object-store-memory=100000000 \
    >"$TEST_TMPDIR/ray_start.out" 2>&1; then
    break
  fi
  stop_head
  [[ $try -lt 3 ]] || { cat "$TEST_TMPDIR/ray_start.out" >&2; fail "ray start --head failed 3 times"; }
  ray_tmp=$(mktemp -d /tmp/moerl-ray.XXXXXX)
done
export RAY_ADDRESS="127.0.0.1:$port"

stage_processes() {  # stage processes of runs under $root
  pgrep -f -- "cluster.fileroot=$root" | grep -v "^$$\$" || true
}
rings_left() { ls /dev/shm 2>/dev/null | grep -c "moerl-demo\.$1\." || true; }
wait_for() {  # seconds, command...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [[ $SECONDS -lt $deadline ]] || return 1; sleep 0.5; done
}

start=$SECONDS
"$pipeline" cluster.fileroot="$root" scheduler.type=ray trial_name=ray pipeline.sft_steps=2 \
  total_train_steps=2 gconfig.n_samples=2 train_dataset.batch_size=2 actor.ppo_n_minibatches=1 gconfig.max_new_tokens=12 \
  pipeline.stage_timeout_s=240 evaluator.freq_steps=null pipeline.report=false \
  >"$TEST_TMPDIR/ray.out" 2>&1 || { cat "$TEST_TMPDIR/ray.out" >&2; fail "the run under Ray exited non-zero"; }
echo "pipeline under Ray: $((SECONDS - start)) s"
run="$root/moerl-demo/ray"
[[ $(cat "$run/weights/LATEST") == 2 ]] || fail "weights/LATEST is '$(cat "$run/weights/LATEST")', want 2"
grep -q "placement group moerl:$run" "$TEST_TMPDIR/ray.out" ||
  { cat "$TEST_TMPDIR/ray.out" >&2; fail "the pipeline did not name its placement group"; }
node_id=$(PYTHONPATH="$ray_env" "$python" -c '
import ray; ray.init(logging_level="ERROR"); print(ray.get_runtime_context().get_node_id())')
for stage in server.0 feeder bridge scorer; do
  log="$run/logs/$stage.log"
  [[ -s "$log" ]] || fail "no log $log"
  grep -q "^ray_launch: stage $stage process: node $node_id .*actor [0-9a-f]" "$log" ||
    { cat "$log" >&2; fail "$stage did not run as a Ray actor on node $node_id"; }
done
grep -q "^ray_launch: stage sft process: node $node_id" "$run/logs/sft.log" ||
  fail "SFT did not run as a Ray actor"
for rank in 0 1; do
  grep -q "^ray_launch: stage trainer rank $rank/2: node $node_id" "$run/logs/trainer.log" ||
    { cat "$run/logs/trainer.log" >&2; fail "trainer rank $rank did not run as a Ray actor"; }
  [[ -s "$run/logs/trainer-ranks/rank$rank.log" ]] || fail "no log of trainer rank $rank"
done
grep -q "^ray_launch: stage trainer ended, status 0 0" "$run/logs/trainer.log" ||
  fail "the trainer ranks did not both end with status 0"
[[ $(rings_left ray) -eq 0 ]] || fail "rings left in /dev/shm after the run"
wait_for 30 test -z "$(stage_processes)" || fail "stage processes left after the run: $(stage_processes)"

# SIGINT, as Ctrl-C sends it (job control on: see pipeline_test.sh): exit
# 130, every stage's process stopped, the rings removed.
set -m
"$pipeline" cluster.fileroot="$root" scheduler.type=ray trial_name=int pipeline.sft_steps=0 \
  total_train_steps=1000 gconfig.n_samples=2 train_dataset.batch_size=2 actor.ppo_n_minibatches=1 gconfig.max_new_tokens=12 \
  pipeline.stage_timeout_s=240 evaluator.freq_steps=null >"$TEST_TMPDIR/int.out" 2>&1 &
first=$!
wait_for 300 test -s "$root/moerl-demo/int/stats.jsonl" ||
  { cat "$TEST_TMPDIR/int.out" >&2; fail "no training step within 300 s"; }
kill -INT "$first"
status=0; wait "$first" || status=$?
set +m
[[ $status -eq 130 ]] || { cat "$TEST_TMPDIR/int.out" >&2; fail "pipeline exited $status after SIGINT, want 130"; }
[[ $(rings_left int) -eq 0 ]] || fail "rings left after SIGINT"
wait_for 30 test -z "$(stage_processes)" || fail "stage processes left after SIGINT: $(stage_processes)"
groups=$(PYTHONPATH="$ray_env" "$python" -c '
import ray; from ray.util import placement_group_table
ray.init(logging_level="ERROR")
print(sum(1 for g in placement_group_table().values() if g["state"] != "REMOVED"))')
[[ $groups -eq 0 ]] || fail "$groups placement group(s) left on the cluster"
stop_head
trap - EXIT
[[ -z "$(alive)" ]] || fail "Ray processes left after stopping the head: $(alive)"
echo "PASS"
