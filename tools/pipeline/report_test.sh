#!/bin/bash
# report.py on a hand-written run: the held-out table compares each
# evaluation with the baseline (--baseline, the SFT trial's stats.jsonl), the
# plots exist, the stages' timing becomes a table, and a malformed stats line
# is named by file and line.
#   report_test.sh PYTHON3 REPORT_PY
set -u
python=$1 report=$2
dir=${TEST_TMPDIR:-/tmp}/report_test
rm -rf "$dir"; mkdir -p "$dir/run" "$dir/sft"
fail() { echo "FAIL: $*"; exit 1; }

cat > "$dir/sft/stats.jsonl" <<'JSON'
{"step": 0, "sft/nll": 2.0}
{"step": 1, "sft/nll": 1.0, "eval-rollout/reward": 0.25, "eval-rollout/greedy_accuracy": 0.5}
JSON
cat > "$dir/run/stats.jsonl" <<'JSON'
{"step": 0, "wall_time": 1000.0, "timeperf/rollout": 20.0, "timeperf/train_step": 10.0, "rollout/reward": 0.2}
{"step": 1, "wall_time": 1090.0, "rollout/reward": 0.3, "eval-rollout/reward": 0.375, "eval-rollout/greedy_accuracy": 0.45}
JSON
mkdir -p "$dir/run/logs"
echo 'I1203 x.cc:1] stage_timing {"stage":"scorer","wall_s":10,"wait_input_s":9,"wait_output_s":0,"transport_s":0.1,"compute_s":0.1,"counts":{}}' \
  > "$dir/run/logs/scorer.log"
"$python" "$report" "$dir/run" --baseline "$dir/sft/stats.jsonl" > "$dir/out.txt" 2>&1 ||
  { cat "$dir/out.txt"; fail "report.py exited non-zero"; }
index=$dir/run/report/index.md
grep -qF "| before RL | 0 | 25.0% | 50.0% |" "$index" || { cat "$index"; fail "no baseline row"; }
# 90 s after step 0 ended, which began 30 s earlier: 2.0 min; +12.5 / -5.0 points.
grep -qF "| 1 | 2.0 | 37.5% (+12.5) | 45.0% (-5.0) |" "$index" || { cat "$index"; fail "no evaluation row"; }
# The stages' timing lines become a table (stage_timing.py).
grep -qF "| scorer | 10.0 | 90.0% |" "$index" || { cat "$index"; fail "no stage timing table"; }
for png in reward eval; do [[ -s "$dir/run/report/$png.png" ]] || fail "no $png.png"; done

printf '{"step": 2}\nnot json\n' >> "$dir/run/stats.jsonl"
if "$python" "$report" "$dir/run" > "$dir/bad.txt" 2>&1; then fail "a malformed line was accepted"; fi
grep -q "stats.jsonl:4: not a JSON object" "$dir/bad.txt" || { cat "$dir/bad.txt"; fail "the error does not name line 4"; }
echo PASS
