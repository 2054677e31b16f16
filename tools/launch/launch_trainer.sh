#!/bin/bash
# Starts one process per rank of the training allocation on this host:
#   bazel run //tools/launch:launch_trainer -- 'sglang:d2+megatron:(attn:d2|ffn:e2)' BINARY [ARGS...]
# computes N with training_ranks and runs
#   python3 -m torch.distributed.run --no-python --nproc-per-node N BINARY [ARGS...]
# (python3: the interpreter that owns the pinned torch wheel). Extra torchrun
# options go in TORCHRUN_ARGS, e.g. TORCHRUN_ARGS="--nnodes 2 --node-rank 0
# --master-addr host0" for several hosts.
set -euo pipefail
here=$(dirname "$0")
runfiles=${RUNFILES_DIR:-$0.runfiles}
find_tool() {  # a data dependency, under bazel run or from bazel-bin
  for p in "$runfiles/_main/$1" "$runfiles/moerl/$1" "$here/$(basename "$1")"; do
    [[ -x $p ]] && { echo "$p"; return; }
  done
  echo "launch_trainer: cannot find $1" >&2; exit 1
}
[[ $# -ge 2 ]] || { echo "usage: launch_trainer ALLOCATION_MODE BINARY [ARGS...]" >&2; exit 1; }
mode=$1; shift
ranks=$("$(find_tool tools/launch/training_ranks)" "$mode")
python=${MOERL_PYTHON:-python3}
[[ -n ${BUILD_WORKING_DIRECTORY:-} ]] && cd "$BUILD_WORKING_DIRECTORY"
echo "launch_trainer: $ranks rank(s) for $mode" >&2
# shellcheck disable=SC2086
exec "$python" -m torch.distributed.run ${TORCHRUN_ARGS:-} --no-python --nproc-per-node "$ranks" "$@"
