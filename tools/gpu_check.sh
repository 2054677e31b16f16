#!/usr/bin/env bash
# The trainer's GPU path, checked on a machine with a GPU, in one go:
#   1. build with --config=cuda (skipped with --prebuilt)
#   2. cuda_nccl_link: the CUDA + NCCL link, the devices seen
#   3. cuda_test: the model on cuda:0 against transformers (fp32, bf16) and
#      the host; the trainer on cuda:0 against the host trainer; a bf16 run
#      that checkpoints and resumes
#   4. the trainer tests that apply (trainer_run_test, train_step_test,
#      mixed_precision_test, device_test), on cuda:0 through trainer.device=auto
#   5. a short trainer run (//trainer:trainer, SFT from scratch on
#      bench-moe.json, bf16, trainer.device=cuda)
#   6. //trainer:grpo_step_benchmark on cuda:0 in bf16 (and fp32)
# then a summary: each step's result and time, tokens/s, step time, peak GPU
# memory. Every step has a timeout; a failed, timed-out or SKIPPED test makes
# the script exit 1 after the summary. Run from the repository root.
#
#   bash tools/gpu_check.sh                  # build, then check
#   bash tools/gpu_check.sh --dry-run        # print the commands only (any machine)
#   bash tools/gpu_check.sh --bundle DIR     # build here (no GPU needed) and pack
#                                            # the binaries + the libraries they
#                                            # need besides torch into DIR
#   bash tools/gpu_check.sh --prebuilt DIR   # check with DIR's binaries (a GPU
#                                            # machine without Bazel, whose python3
#                                            # has torch 2.11 with CUDA); DIR may
#                                            # also be the DIR.tar.xz --bundle writes
#   --out DIR   logs and summary.txt there (default: a new folder under /tmp)
#   --budget S  seconds for the checks after the build (default 480): a check
#               that would start later is NOT RUN, which fails the script
#   MOERL_BAZEL="bazel --output_base=..."  the bazel command for the build
#   --no-gpu-preflight   skip the nvidia-smi check (to try the script's own
#                        logic on a machine without a GPU: it must then fail)
set -uo pipefail

DRY_RUN=0
PREFLIGHT=1
BUDGET=480
MODE=build  # build, bundle, prebuilt
BUNDLE=""
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --no-gpu-preflight) PREFLIGHT=0 ;;
    --bundle) MODE=bundle; BUNDLE="${2:?--bundle needs a folder}"; shift ;;
    --prebuilt) MODE=prebuilt; BUNDLE="${2:?--prebuilt needs a folder}"; shift ;;
    --out) OUT="${2:?--out needs a folder}"; shift ;;
    --budget) BUDGET="${2:?--budget needs seconds}"; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | grep '^#'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ ! -f WORKSPACE ] || [ ! -f trainer/BUILD ]; then
  echo "gpu_check: run it from the repository root (no WORKSPACE / trainer/BUILD here)" >&2
  exit 2
fi
[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/moerl_gpu_check.XXXXXX)
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
FAILED=0

# The binaries (bazel-bin paths, or the bundle's bin/).
BINARIES="tests/cuda_nccl_link trainer/cuda_test trainer/trainer_run_test trainer/train_step_test \
trainer/mixed_precision_test trainer/device_test trainer/trainer trainer/grpo_step_benchmark"
TARGETS=""
for b in $BINARIES; do TARGETS="$TARGETS //${b%/*}:${b##*/}"; done
# MOERL_BAZEL: the bazel command (e.g. with --output_base) for the build.
BAZEL="${MOERL_BAZEL:-bazel}"
BAZEL_BUILD="$BAZEL build --config=cuda$TARGETS"

bin() {  # path of binary $1 (e.g. trainer/cuda_test)
  if [ "$MODE" = prebuilt ]; then echo "$BUNDLE/bin/${1##*/}"; else echo "bazel-bin/$1"; fi
}

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME TIMEOUT_S COMMAND...: runs it with its log in $OUT/NAME.log,
# records PASS/FAIL/TIMEOUT and the time. A test log with "[  SKIPPED ]"
# fails the step: a skipped GPU test checked nothing.
step() {
  local name="$1" limit="$2"
  shift 2
  if [ "$DRY_RUN" = 1 ]; then
    echo "[dry-run] timeout ${limit}s: $*"
    return 0
  fi
  local start end rc result
  if [ "$name" != build ] && [ -n "${CHECKS_START:-}" ] && [ $(( $(date +%s) - CHECKS_START )) -ge "$BUDGET" ]; then
    FAILED=1
    note "$(printf '%-24s %-32s' "$name" "NOT RUN (past --budget ${BUDGET}s)")"
    return 0
  fi
  echo "== $name (timeout ${limit}s): $*"
  start=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  result=PASS
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    result="TIMEOUT"
  elif [ $rc -ne 0 ]; then
    result="FAIL(rc=$rc)"
  elif grep -q '^\[  SKIPPED \]' "$OUT/$name.log"; then
    result="FAIL(skipped tests: no GPU?)"
  fi
  [ "$result" = PASS ] || FAILED=1
  note "$(printf '%-24s %-32s %7.1f s' "$name" "$result" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')")"
  if [ "$result" != PASS ]; then tail -n 25 "$OUT/$name.log" | sed 's/^/    | /'; fi
  return 0
}

# --- bundle: build and pack, no GPU needed ---------------------------------
if [ "$MODE" = bundle ]; then
  if [ "$DRY_RUN" = 1 ]; then
    echo "[dry-run] $BAZEL_BUILD"
    echo "[dry-run] copy ${BINARIES// /, } into $BUNDLE/bin, their non-torch, non-libc libraries into $BUNDLE/lib"
    exit 0
  fi
  $BAZEL_BUILD || { echo "gpu_check: the --config=cuda build failed" >&2; exit 1; }
  mkdir -p "$BUNDLE/bin" "$BUNDLE/lib"
  for b in $BINARIES; do
    cp -L "bazel-bin/$b" "$BUNDLE/bin/" && strip --strip-debug "$BUNDLE/bin/${b##*/}" 2>/dev/null
    # Libraries besides torch/CUDA (the GPU machine's torch wheel has those)
    # and the C runtime: absl, protobuf, yaml-cpp, icu, our shared objects.
    ldd "bazel-bin/$b" | awk '$3 ~ /^\// {print $3}' |
      grep -v -E '/(torch|nvidia)/|/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so' |
      while read -r lib; do cp -Ln "$lib" "$BUNDLE/lib/" 2>/dev/null; done
  done
  cp -L "$($BAZEL info --config=cuda output_base 2>/dev/null)/external/libtorch/version.txt" "$BUNDLE/torch_version.txt" 2>/dev/null
  # One compressed file as well (ICU's data library alone is ~30 MB).
  tar -C "$BUNDLE" -cJf "$BUNDLE.tar.xz" bin lib torch_version.txt
  du -sh "$BUNDLE"/bin "$BUNDLE"/lib "$BUNDLE.tar.xz"
  echo "gpu_check: bundle in $BUNDLE and $BUNDLE.tar.xz; on the GPU machine:"
  echo "  bash tools/gpu_check.sh --prebuilt $BUNDLE   (or --prebuilt $BUNDLE.tar.xz)"
  exit 0
fi

# --- preflight ---------------------------------------------------------------
if [ "$DRY_RUN" = 0 ] && [ "$PREFLIGHT" = 1 ]; then
  if ! timeout 30 nvidia-smi -L >"$OUT/nvidia-smi.log" 2>&1 || ! grep -q '^GPU ' "$OUT/nvidia-smi.log"; then
    echo "gpu_check: no GPU (nvidia-smi -L):" >&2
    cat "$OUT/nvidia-smi.log" >&2
    exit 1
  fi
  note "GPU: $(head -n 1 "$OUT/nvidia-smi.log")"
fi

if [ "$MODE" = prebuilt ] && [ "$DRY_RUN" = 0 ] && [ -f "$BUNDLE" ]; then
  mkdir -p "$OUT/bundle" && tar -C "$OUT/bundle" -xJf "$BUNDLE" || { echo "gpu_check: cannot unpack $BUNDLE" >&2; exit 1; }
  BUNDLE="$OUT/bundle"
fi
if [ "$MODE" = prebuilt ]; then
  # The torch wheel of this machine's python3 (the same version as the
  # build's) and its CUDA libraries; the bundle's other libraries first.
  TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
  if [ "$DRY_RUN" = 0 ] && [ -z "$TORCH_LIB" ]; then
    echo "gpu_check: --prebuilt needs python3 with torch (for libtorch_cuda.so)" >&2
    exit 1
  fi
  NVIDIA_LIBS=$(ls -d "${TORCH_LIB%/torch/lib}"/nvidia/*/lib "${TORCH_LIB%/torch/lib}"/nvidia/cu*/lib 2>/dev/null | tr '\n' ':')
  export LD_LIBRARY_PATH="$BUNDLE/lib:$TORCH_LIB:$NVIDIA_LIBS${LD_LIBRARY_PATH:-}"
  note "torch here: $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null); built against: $(cat "$BUNDLE/torch_version.txt" 2>/dev/null)"
else
  step build 3600 $BAZEL_BUILD
  if [ "$FAILED" = 1 ]; then
    note "gpu_check: FAILED (the build)"
    exit 1
  fi
fi

# Tests read their fixtures relative to the repository root (as Bazel's
# runfiles tree holds them) and write under TEST_TMPDIR.
export TEST_TMPDIR="$OUT/tmp"
mkdir -p "$TEST_TMPDIR"
CHECKS_START=$(date +%s)

# Timeouts: several times what each should take on an H200 machine.
step cuda_nccl_link 30 "$(bin tests/cuda_nccl_link)"
step cuda_test 150 "$(bin trainer/cuda_test)"

# A short trainer run: SFT from scratch on bench-moe.json, bf16, on cuda:0.
RUN="$OUT/trainer_run"
if [ "$DRY_RUN" = 0 ]; then
  mkdir -p "$RUN/model"
  cp trainer/model/configs/bench-moe.json "$RUN/model/config.json"
  cat >"$RUN/run.yaml" <<EOF
experiment_name: gpu-check
trial_name: sft_bf16
cluster:
  fileroot: $RUN
seed: 1
actor:
  path: $RUN/model
  init_from_scratch: true
  dtype: bfloat16
  ppo_n_minibatches: 1
  optimizer:
    lr: 1.0e-3
    warmup_steps_proportion: 0.0
total_train_steps: 8
train_dataset:
  batch_size: 4
trainer:
  mode: sft
  device: cuda
  sft_dataset: dataset/testdata/sample.jsonl
  sft_epochs: 8
  follow_batches: false
EOF
fi
step trainer_bf16_run 60 "$(bin trainer/trainer)" --config "$RUN/run.yaml"

# The GRPO step benchmark on cuda:0: bf16 (the training dtype), then fp32.
BENCH_ARGS="--config=trainer/model/configs/bench-moe.json --groups=8 --group_size=8 --prompt=128 --completion=384 --steps=5 --rounds=3 --skip_python"
step grpo_bench_bf16 60 "$(bin trainer/grpo_step_benchmark)" --device=cuda --dtype=bfloat16 $BENCH_ARGS
step grpo_bench_fp32 60 "$(bin trainer/grpo_step_benchmark)" --device=cuda --dtype=float32 $BENCH_ARGS

# The trainer tests that apply (trainer.device=auto: cuda:0 here).
step device_test 60 "$(bin trainer/device_test)"
step train_step_test 60 "$(bin trainer/train_step_test)"
step mixed_precision_test 60 "$(bin trainer/mixed_precision_test)"
step trainer_run_test 90 "$(bin trainer/trainer_run_test)"

[ "$DRY_RUN" = 1 ] && exit 0

# --- figures -------------------------------------------------------------------
note ""
note "figures:"
grep -h -E "^(cuda|trainer on cuda)" "$OUT/cuda_test.log" 2>/dev/null | sed 's/^/  /' | tee -a "$SUMMARY"
for b in grpo_bench_bf16 grpo_bench_fp32; do
  line=$(grep -h '^summary:' "$OUT/$b.log" 2>/dev/null | tail -n 1)
  note "  $b: ${line:-(no summary line)}"
done
last=$(grep -h 'trainer: step' "$OUT/trainer_bf16_run.log" 2>/dev/null | tail -n 1)
note "  trainer bf16 run, last step: ${last:-(no step line)}"
if [ "$FAILED" = 1 ]; then
  note "gpu_check: FAILED (logs in $OUT)"
  exit 1
fi
note "gpu_check: all passed (logs in $OUT)"
exit 0
