#!/usr/bin/env python3
"""One transformers Qwen3-MoE training step (forward + backward of CE + aux
loss) under torch.profiler, written as a chrome trace, for an op-by-op
comparison with moerl's step (model_benchmark --profile):

  python3 tools/model/profile_transformers_step.py --threads 1 --out /tmp/hf.json
  ./bazel-bin/trainer/model/model_benchmark --threads=1 --profile=/tmp/moerl.json
  python3 tools/model/trace_summary.py /tmp/hf.json
  python3 tools/model/trace_summary.py /tmp/moerl.json
"""
import argparse
import time

import torch
import transformers
from torch.profiler import ProfilerActivity, profile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--config", default="trainer/model/configs/bench-moe.json")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = transformers.AutoConfig.from_pretrained(args.config)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    print("experts:", model.config._experts_implementation, "attention:", model.config._attn_implementation)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq))
    model.train()

    def step():
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        model.zero_grad(set_to_none=True)

    step()  # warm-up
    start = time.perf_counter()
    step()
    print(f"unprofiled step: {time.perf_counter() - start:.2f} s")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    prof.export_chrome_trace(args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
