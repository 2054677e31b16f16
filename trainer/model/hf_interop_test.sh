#!/usr/bin/env bash
# A checkpoint written by moerl loads in Hugging Face transformers: resave the
# oracle checkpoints (MoE and dense) through moerl's loader and writer, then
# load each in transformers and compare its logits with the oracle fixture
# (max abs diff <= 1e-5, checked by tools/model/make_oracle_fixture.py).
set -euo pipefail
resave="$1"; python="$2"; script="$3"; testdata="$(dirname "$4")/.."
for model in moe dense; do
  out="${TEST_TMPDIR}/${model}"
  "$resave" "${testdata}/${model}" "$out"
  "$python" "$script" --verify "$out" --fixture "${testdata}/${model}/oracle.safetensors"
done
