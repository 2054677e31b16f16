#!/usr/bin/env bash
# reward_scorer's one-completion mode in both unit rules (oracle: math-verify
# gives 0 for a boxed "18 dollars", 1 for "18 hours").
set -uo pipefail
bin=reward/reward_scorer
fail() { echo "FAIL: $*" >&2; exit 1; }
check() {  # expected, then the arguments
  local want=$1; shift
  local got; got=$("$bin" "$@") || fail "exit $? for $*"
  [[ "$got" == "$want" ]] || fail "'$*' printed '$got', want '$want'"
}
check "reward=0 reason=mismatch" --completion '\boxed{18 dollars}' --gold 18
check "reward=1 reason=match" --completion '\boxed{18 hours}' --gold 18
check "reward=1 reason=match" --completion '\boxed{18 dollars}' --gold 18 --lenient_units
"$bin" --completion x --gold 18 --strict_units >/dev/null 2>&1 && fail "an unknown flag must fail"
echo PASS
