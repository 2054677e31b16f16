#!/usr/bin/env bash
# TensorBoard reads moerl's event files: the fixture writes three steps of
# two scalars, tensorboard's EventAccumulator must give them back. Then a
# resumed run (a second process, its own file) redoes steps 1 and 2 with
# other values: the reader must show each step once, with the redone values
# (the resumed writer's SessionLog START purges the steps it repeats).
set -euo pipefail
fixture="$1"; python="$2"
dir="${TEST_TMPDIR}/tb"
rm -rf "$dir"
"$fixture" "$dir"
check() {
  "$python" - "$dir" "$1" <<'PY'
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1])
ea.Reload()
tags = sorted(ea.Tags()["scalars"])
assert tags == ["ppo_actor/task_reward/avg", "ppo_actor/update/grad_norm"], tags
reward = [(e.step, e.value) for e in ea.Scalars("ppo_actor/task_reward/avg")]
norm = [(e.step, e.value) for e in ea.Scalars("ppo_actor/update/grad_norm")]
if sys.argv[2] == "first":
    assert reward == [(0, 0.0), (1, 0.25), (2, 0.5)], reward
else:
    assert reward == [(0, 0.0), (1, 10.25), (2, 10.5)], reward
assert norm == [(0, 1.5), (1, 2.5), (2, 3.5)], norm
print("tensorboard read", sys.argv[2], tags)
PY
}
check first
sleep 1  # a later second: the resumed run's file sorts after the first
"$fixture" "$dir" resume=1
[[ $(ls "$dir" | wc -l) == 2 ]] || { echo "FAIL: expected two event files"; ls -l "$dir"; exit 1; }
check resume
