#!/usr/bin/env bash
# The alloc_plan binary as a user calls it: exit codes, stdout/stderr, and the
# shell-quoted allocation_mode override from docs/config.md.
set -uo pipefail
bin=tools/alloc_plan/alloc_plan
cfg=tools/alloc_plan/testdata/qwen3-30b-32gpu.yaml
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$bin" --config "$cfg" 'allocation_mode="sglang:d4t4+megatron:(attn:d1p4t2c2|ffn:d1p4t1e4)"') \
  || fail "quoted allocation_mode override exited $?"
grep -q 'megatron:p4t2c2e4' <<<"$out" || fail "table lacks the canonical allocation: $out"

"$bin" --config "$cfg" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["gpus"]["needed"] == 32, d' \
  || fail "--json output is not the expected JSON"

err=$("$bin" --config "$cfg" cluster.n_nodes=1 2>&1 >/dev/null); rc=$?
[[ $rc -eq 1 ]] || fail "a layout that does not fit must exit 1, got $rc"
grep -q 'problem' <<<"$err" || fail "stderr should summarise the problems: $err"

err=$("$bin" --config "$cfg" allocation_mode=fsdp:d0 2>&1); rc=$?
[[ $rc -eq 1 ]] || fail "bad allocation_mode must exit 1, got $rc"
grep -q '\^' <<<"$err" || fail "bad allocation_mode must show a caret: $err"
echo PASS
