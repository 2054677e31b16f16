#!/bin/bash
# The server binary end to end: starts on port 0 from a run's weights/ folder
# (LATEST -> v0), writes its address file, answers /generate and the probe,
# rejects a bad key, and exits 0 on SIGTERM.
set -euo pipefail
server="$1"
config="$2"
checkpoint="$(dirname "$3")"  # any file of trainer/model/testdata/moe
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
mkdir -p "$tmp/weights/v0"
cp "$checkpoint"/config.json "$checkpoint"/*.safetensors "$checkpoint"/model.safetensors.index.json "$tmp/weights/v0/"
echo 0 > "$tmp/weights/LATEST"

# A misspelt server key is an error naming it.
if "$server" --config "$config" server.prot=1 2> "$tmp/bad.err"; then
  echo "FAIL: server.prot was accepted"; exit 1
fi
grep -q "server.prot" "$tmp/bad.err" || { echo "FAIL: message does not name server.prot:"; cat "$tmp/bad.err"; exit 1; }

"$server" --config "$config" actor.path="$tmp/weights" server.address_file="$tmp/addr" 2> "$tmp/server.err" &
pid=$!
for _ in $(seq 1 300); do [[ -s "$tmp/addr" ]] && break; sleep 0.1; done
[[ -s "$tmp/addr" ]] || { echo "FAIL: no address file"; cat "$tmp/server.err"; kill "$pid"; exit 1; }
address="$(cat "$tmp/addr")"
grep -q "listening on $address" "$tmp/server.err" || { echo "FAIL: stderr lacks 'listening on $address'"; cat "$tmp/server.err"; exit 1; }

python3 - "$address" <<'PY'
import json, sys, urllib.request
address = sys.argv[1]
def post(path, body):
    req = urllib.request.Request(address + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())
out = post("/generate", {"input_ids": [1, 5, 9], "sampling_params": {"max_new_tokens": 6, "temperature": 0, "ignore_eos": True}, "return_logprob": True})
assert len(out["output_ids"]) == 6, out
assert out["meta_info"]["weight_version"] == "0", out   # from weights/v0
assert [e[1] for e in out["meta_info"]["output_token_logprobs"]] == out["output_ids"], out
probe = post("/generate", {"input_ids": [1, 5, 9, 33], "sampling_params": {"max_new_tokens": 0}, "return_logprob": True, "logprob_start_len": 0})
lps = probe["meta_info"]["input_token_logprobs"]
assert len(lps) == 4 and lps[0][0] is None and all(e[0] < 0 for e in lps[1:]), probe
with urllib.request.urlopen(address + "/health", timeout=10) as r:
    assert r.status == 200
try:
    post("/generate", {"input_ids": [1, 999]})
    raise SystemExit("FAIL: out-of-vocabulary id accepted")
except urllib.error.HTTPError as e:
    assert e.code == 400 and "input_ids[1]" in json.loads(e.read())["message"]
print("ok")
PY

kill -TERM "$pid"
wait "$pid"
echo PASS
