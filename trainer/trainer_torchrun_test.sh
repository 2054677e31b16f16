#!/bin/bash
# The trainer binary on 2 ranks under torchrun:
#   PYTHON3 -m torch.distributed.run --no-python --nproc-per-node 2 TRAINER \
#     --config run.yaml allocation_mode='sglang:d1+megatron:(attn:d2|ffn:e2)'
# for 2 GRPO steps on the batch grpo_step_fixture writes (copied as batches 0
# and 1). Checks: exit 0; weights/LATEST is 2; v1 and v2 are complete HF
# folders holding every expert; rank 0 alone wrote stats.jsonl (2 lines);
# v1 equals the one-process v1 of the fixture (same batch, same settings)
# within 1e-5 per tensor (Frobenius).
#   trainer_torchrun_test.sh TRAINER FIXTURE PYTHON3 MODEL_DIR
set -u
trainer=$1 fixture=$2 python=$3 model_dir=$4
out=${TEST_TMPDIR:-/tmp}/trainer_torchrun
rm -rf "$out"; mkdir -p "$out"
fail() { echo "FAIL: $*"; [[ -f $out/torchrun.log ]] && cat "$out/torchrun.log"; exit 1; }

"$fixture" "$out/fixture" "$model_dir" > "$out/fixture.log" 2>&1 || { cat "$out/fixture.log"; fail "fixture"; }
run=$out/runs/torchrun/t0
mkdir -p "$run/batches"
cp "$out/fixture/oracle/t0/batches/000000.rec" "$run/batches/000000.rec"
cp "$out/fixture/oracle/t0/batches/000000.rec" "$run/batches/000001.rec"
cat > "$out/run.yaml" <<YAML
experiment_name: torchrun
trial_name: t0
cluster: {fileroot: $out/runs}
actor:
  path: $model_dir
  dtype: float32
  optimizer: {lr: 1.0e-3, weight_decay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1.0e-2,
              gradient_clipping: 0.0, warmup_steps_proportion: 0.0}
  ppo_n_minibatches: 1
  eps_clip: 0.2
  reward_scaling: 10.0
  reward_bias: -0.5
  reward_norm: {mean_level: group, std_level: group, group_size: 4}
trainer: {follow_batches: false, threads: 1}
YAML
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" -m torch.distributed.run --no-python --nproc-per-node 2 --master-port "$port" \
  "$trainer" --config "$out/run.yaml" "+allocation_mode=sglang:d1+megatron:(attn:d2|ffn:e2)" \
  > "$out/torchrun.log" 2>&1 || fail "torchrun exited non-zero"
[[ $(cat "$run/weights/LATEST" 2>/dev/null | tr -d '\n') == *2* ]] || fail "weights/LATEST is not v2: $(cat "$run/weights/LATEST")"
[[ $(wc -l < "$run/stats.jsonl") == 2 ]] || fail "stats.jsonl should have 2 lines"
"$python" - "$run/weights" "$out/fixture/oracle/t0/weights/v1" <<'PY' || fail "published weights"
import json, struct, sys
import numpy as np
def load(d):
    with open(d + "/model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"]).astype(np.float64)
    return out
for v in ("v1", "v2"):
    w = load(sys.argv[1] + "/" + v)
    experts = {k.split(".experts.")[1].split(".")[0] for k in w if ".experts." in k}
    assert len(experts) == 8, f"{v} holds experts {sorted(experts)}"
ref, got = load(sys.argv[2]), load(sys.argv[1] + "/v1")
assert ref.keys() == got.keys(), set(ref) ^ set(got)
worst = max(np.linalg.norm(got[k] - ref[k]) / max(np.linalg.norm(ref[k]), 1e-30) for k in ref)
print(f"v1 on 2 ranks vs one process: worst tensor (Frobenius) {worst:.3e}")
assert worst <= 1e-5, worst
PY
tail -n 5 "$out/torchrun.log"
echo PASS
