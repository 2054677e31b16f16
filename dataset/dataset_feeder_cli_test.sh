#!/usr/bin/env bash
# The dataset_feeder and gsm8k_synth binaries, run as a user would.
set -euo pipefail
root="${TEST_SRCDIR}/moerl"
feeder="$root/dataset/dataset_feeder"
synth="$root/dataset/gsm8k_synth"
tmp="${TEST_TMPDIR}"
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$tmp/base.yaml" <<YAML
experiment_name: cli
trial_name: trial0
seed: 1
total_train_epochs: 1
train_dataset:
  path: $root/dataset/testdata/sample.jsonl
  batch_size: 1
dataset:
  print_gold: false
YAML

# Gold answers of the sample, one per line (the smoke pipeline's call).
mapfile -t golds < <("$feeder" --config "$tmp/base.yaml" dataset.print_gold=true 2>/dev/null)
[[ ${#golds[@]} -eq 5 ]] || fail "expected 5 gold answers, got ${#golds[@]}"

# Synthetic data: reproducible, and the feeder reads it into a record file.
"$synth" --level 1 --count 40 --seed 3 > "$tmp/a.jsonl"
"$synth" --level 1 --count 40 --seed 3 > "$tmp/b.jsonl"
cmp -s "$tmp/a.jsonl" "$tmp/b.jsonl" || fail "same seed gave different synthetic data"
[[ $(wc -l < "$tmp/a.jsonl") -eq 40 ]] || fail "expected 40 synthetic rows"
"$feeder" --config "$tmp/base.yaml" train_dataset.path="$tmp/a.jsonl" \
  +dataset.output_path="$tmp/p.rec" total_train_epochs=2 train_dataset.batch_size=8 2> "$tmp/log"
[[ -s "$tmp/p.rec" ]] || fail "no prompt file written"
[[ $(head -c 8 "$tmp/p.rec") == MOERLREC ]] || fail "not a record file"
grep -q "80 prompts published" "$tmp/log" || fail "expected 80 prompts: $(cat "$tmp/log")"

# Stopping early reports where to resume.
"$feeder" --config "$tmp/base.yaml" train_dataset.path="$tmp/a.jsonl" \
  +dataset.output_path="$tmp/q.rec" total_train_epochs=2 +dataset.max_prompts=50 2> "$tmp/log2"
grep -q "resume with dataset.start_epoch=1 dataset.start_index=10" "$tmp/log2" || fail "$(cat "$tmp/log2")"

# A malformed row: one clear line naming file and line, exit 1.
{ head -2 "$tmp/a.jsonl"; echo '{"question": "q"}'; } > "$tmp/bad.jsonl"
if "$feeder" --config "$tmp/base.yaml" train_dataset.path="$tmp/bad.jsonl" \
  +dataset.output_path="$tmp/r.rec" 2> "$tmp/err"; then fail "bad row accepted"; fi
grep -q "bad.jsonl:3: expected a string field \"answer\"" "$tmp/err" || fail "$(cat "$tmp/err")"
"$feeder" --config "$tmp/base.yaml" train_dataset.path="$tmp/bad.jsonl" \
  +dataset.output_path="$tmp/r.rec" +dataset.skip_malformed=true 2> "$tmp/err2" \
  || fail "skip_malformed still failed: $(cat "$tmp/err2")"
grep -q "1 malformed rows skipped" "$tmp/err2" || fail "$(cat "$tmp/err2")"

# A misspelt key: one line naming the full key path, exit 1.
if "$feeder" --config "$tmp/base.yaml" +dataset.output_pth=x.rec 2> "$tmp/err3"; then
  fail "unknown key accepted"
fi
grep -q "dataset.output_pth" "$tmp/err3" || fail "$(cat "$tmp/err3")"
[[ $(wc -l < "$tmp/err3") -eq 1 ]] || fail "expected one error line: $(cat "$tmp/err3")"

# Bad synthetic knobs are a usage error.
if "$synth" --min_steps 3 --max_steps 2 2>/dev/null; then fail "bad steps accepted"; fi
echo "dataset_feeder CLI: OK"
