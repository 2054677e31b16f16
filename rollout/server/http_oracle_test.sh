#!/usr/bin/env bash
# The server binary over HTTP against transformers' generate() on the tiny
# Qwen3-MoE checkpoint (ids exact, log-probs within 1e-5), and AReaL's own
# SGLang client code against the server: tools/server/http_oracle.py.
set -euo pipefail
python="$1"; script="$2"; server="$3"; config="$4"
checkpoint="$(dirname "$5")"  # any file of trainer/model/testdata/moe
areal_dir="$(head -n1 "$6")"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
"$python" "$script" --server "$server" --config "$config" --checkpoint "$checkpoint" \
  --areal "$areal_dir" --tmp "$tmp/http_oracle"
