#!/usr/bin/env bash
# moerl's advantages and PPO loss against AReaL 1.0.4, generated fresh on every
# run: tools/trainer/areal_oracle.py runs AReaL's own functions on random
# cases, trainer/areal_oracle_compare.cc replays them through moerl (1e-6).
set -euo pipefail
python="$1"; script="$2"; compare="$3"; pythonpath_file="$4"
areal_dir="$(head -n1 "$pythonpath_file")"
if [[ -z "$areal_dir" || ! -f "$areal_dir/areal/__init__.py" ]]; then
  echo "areal_oracle_test: AReaL is not installed in '${areal_dir}'; run tools/setup.sh" \
       "(then 'bazel sync --configure' if Bazel looked before it was there)" >&2
  exit 1
fi
fixture="${TEST_TMPDIR}/areal_oracle.safetensors"
PYTHONPATH="$areal_dir" "$python" "$script" "$fixture"
"$compare" "$fixture"
