#!/usr/bin/env python3
"""transformers' generate() on a checkpoint, the peer of
//rollout/server:server_benchmark (run it with --keep_model=DIR, then this on
DIR with the same --threads, --prompt and --new_tokens). Greedy, EOS off,
random prompts of equal length (no padding). For each batch size, `requests`
prompts in batches of that size; prints tokens per wall second and per CPU
second of the process (the steadier figure on a shared machine).

  python3 tools/server/bench_generate_transformers.py --checkpoint /tmp/bench-model \
      --threads 1 --requests 16 --prompt 32 --new_tokens 128 --batch 1 16
"""
import argparse
import time

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new_tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=torch.float32)
    model.eval()
    model.generation_config.eos_token_id = None
    config = transformers.GenerationConfig(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                           do_sample=False, pad_token_id=0, use_cache=True)
    prompts = torch.randint(0, model.config.vocab_size, (args.requests, args.prompt))
    with torch.no_grad():
        model.generate(prompts[:1], generation_config=transformers.GenerationConfig(
            max_new_tokens=4, do_sample=False, pad_token_id=0))  # warm-up
        for batch in args.batch:
            start, cpu = time.perf_counter(), time.process_time()
            tokens = 0
            for first in range(0, args.requests, batch):
                ids = prompts[first:first + batch]
                out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
                tokens += (out.shape[1] - args.prompt) * ids.shape[0]
            wall, used = time.perf_counter() - start, time.process_time() - cpu
            print(f"transformers generate(), batch {batch:3d}: {tokens / wall:8.1f} tokens/s wall, "
                  f"{tokens / used:8.1f} tokens/CPU-s")


if __name__ == "__main__":
    main()
