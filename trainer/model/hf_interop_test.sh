#!/usr/bin/env bash
# A checkpoint written by moerl loads in Hugging Face transformers: resave the
# oracle checkpoints (MoE and dense) through moerl's loader and writer, then
# load each in transformers and compare its logits with the oracle fixture
# (max abs diff <= 1e-5, checked by tools/model/make_oracle_fixture.py).
set -euo pipefail
resave="$1"; python="$2"; script="$3"; testdata="$(dirname "$4")/.."
# The MoE model is written in small shards, so transformers also reads
# moerl's model.safetensors.index.json; the dense one as a single file.
for model in moe dense; do
  out="${TEST_TMPDIR}/${model}"
  shard_bytes=$([[ $model == moe ]] && echo 300000 || echo 2147483648)
  "$resave" "${testdata}/${model}" "$out" fp32 "$shard_bytes"
  if [[ $model == moe && ! -f "$out/model.safetensors.index.json" ]]; then
    echo "hf_interop_test: expected a sharded checkpoint in $out" >&2; exit 1
  fi
  "$python" "$script" --verify "$out" --fixture "${testdata}/${model}/oracle.safetensors"
done
