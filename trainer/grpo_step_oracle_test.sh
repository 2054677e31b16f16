#!/usr/bin/env bash
# One GRPO step of moerl's trainer against transformers + torch.optim.AdamW
# (tools/trainer/grpo_step_oracle.py): weights after the step within 1e-5.
set -euo pipefail
fixture="$1"; python="$2"; script="$3"; model_dir="$(dirname "$4")"
out="${TEST_TMPDIR}/grpo_step"
rm -rf "$out"; mkdir -p "$out"
"$fixture" "$out" "$model_dir"
"$python" "$script" "$out" "$model_dir"
