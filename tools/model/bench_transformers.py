#!/usr/bin/env python3
"""The transformers peer for //trainer/model:model_benchmark (which runs this
script itself, in the same run, with the same thread count, and prints the
ratios). Prints one JSON line:
  {"train_tokens_per_s": ..., "train_tokens_per_cpu_s": ..., "generate_tokens_per_s": ..., "threads": N}
(per CPU-second: process CPU time, which on a shared machine with --threads 1
counts only this process's own work)

  python3 tools/model/bench_transformers.py --threads 2 --config trainer/model/configs/bench-moe.json \
      --batch 8 --seq 512 --steps 2 --gen_batch 8 --prompt 32 --new_tokens 32
"""
import argparse
import json
import time

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--gen_batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new_tokens", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = transformers.AutoConfig.from_pretrained(args.config)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq))

    model.train()
    out = model(input_ids=ids, labels=ids)  # warm-up
    out.loss.backward()
    model.zero_grad(set_to_none=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        model.zero_grad(set_to_none=True)
    train_s = (time.perf_counter() - start) / args.steps
    train_cpu_s = (time.process_time() - cpu_start) / args.steps

    model.eval()
    prompts = torch.randint(0, config.vocab_size, (args.gen_batch, args.prompt))
    with torch.no_grad():
        model.generate(prompts, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0)
        start = time.perf_counter()
        gen = model.generate(prompts, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                             do_sample=False, pad_token_id=0, use_cache=True)
        gen_s = time.perf_counter() - start
    new = (gen.shape[1] - args.prompt) * args.gen_batch
    print(json.dumps({"train_tokens_per_s": args.batch * args.seq / train_s,
                      "train_tokens_per_cpu_s": args.batch * args.seq / train_cpu_s,
                      "generate_tokens_per_s": new / gen_s, "threads": args.threads}))


if __name__ == "__main__":
    main()
