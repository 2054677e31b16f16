#!/bin/bash
# Multi-process checks of trainer/parallel with real launches (not threads).
#   parallel_launch_test.sh MODE SMOKE_BINARY PYTHON3 CONFIG_JSON
# MODE "env": two processes started here with torchrun's variables (RANK,
#   WORLD_SIZE, ..., a free MASTER_PORT): the step must match one process;
#   then rank 1 exits mid-step and rank 0 must fail within 60 s with an error
#   that names rank 1.
# MODE "torchrun": the same step under
#   PYTHON3 -m torch.distributed.run --no-python --nproc-per-node 2 SMOKE ...
set -u
mode=$1 smoke=$2 python=$3 config=$4
layout='megatron:(attn:d2|ffn:e2)'
out=${TEST_TMPDIR:-/tmp}/parallel_launch
mkdir -p "$out"
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

launch_two() {  # launch_two PORT ARGS...: ranks 0 and 1 in the background, logs in $out
  local port=$1; shift
  for rank in 0 1; do
    RANK=$rank WORLD_SIZE=2 LOCAL_RANK=$rank LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      "$smoke" "$@" > "$out/rank$rank.log" 2>&1 &
    pids[$rank]=$!
  done
}

fail() { echo "FAIL: $*"; for f in "$out"/*.log; do echo "--- $f"; cat "$f"; done; exit 1; }

if [[ $mode == env ]]; then
  launch_two "$(free_port)" "$layout" "$config"
  wait "${pids[0]}" || fail "rank 0 exited non-zero"
  wait "${pids[1]}" || fail "rank 1 exited non-zero"
  grep -q "parallel_smoke: ok" "$out/rank0.log" || fail "rank 0 did not check the step"
  cat "$out/rank0.log"

  start=$SECONDS
  launch_two "$(free_port)" "$layout" "$config" die=1
  wait "${pids[1]}"; [[ $? == 3 ]] || fail "rank 1 should exit 3 on purpose"
  wait "${pids[0]}" && fail "rank 0 succeeded although rank 1 died"
  elapsed=$((SECONDS - start))
  (( elapsed < 60 )) || fail "rank 0 took ${elapsed}s to fail"
  grep -q "rank 1 stopped sending heartbeats" "$out/rank0.log" || fail "rank 0's error does not name rank 1"
  echo "dead rank reported after ${elapsed}s:"; cat "$out/rank0.log"
  echo PASS
elif [[ $mode == torchrun ]]; then
  "$python" -m torch.distributed.run --no-python --nproc-per-node 2 --master-port "$(free_port)" \
    "$smoke" "$layout" "$config" > "$out/torchrun.log" 2>&1 || fail "torchrun exited non-zero"
  grep -q "parallel_smoke: ok" "$out/torchrun.log" || fail "no check in the torchrun output"
  cat "$out/torchrun.log"
  echo PASS
else
  echo "unknown mode $mode"; exit 2
fi
