#!/usr/bin/env bash
# TensorBoard reads moerl's event files: the fixture writes three steps of
# two scalars, tensorboard's EventAccumulator must give them back.
set -euo pipefail
fixture="$1"; python="$2"
dir="${TEST_TMPDIR}/tb"
"$fixture" "$dir"
"$python" - "$dir" <<'PY'
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1])
ea.Reload()
tags = sorted(ea.Tags()["scalars"])
assert tags == ["ppo_actor/task_reward/avg", "ppo_actor/update/grad_norm"], tags
reward = [(e.step, e.value) for e in ea.Scalars("ppo_actor/task_reward/avg")]
norm = [(e.step, e.value) for e in ea.Scalars("ppo_actor/update/grad_norm")]
assert reward == [(0, 0.0), (1, 0.25), (2, 0.5)], reward
assert norm == [(0, 1.5), (1, 2.5), (2, 3.5)], norm
print("tensorboard read", tags)
PY
