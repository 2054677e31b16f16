#!/usr/bin/env python3
"""The Python peer of //trainer:grpo_step_benchmark (which writes DIR and runs
this script itself, in the same run, with the same thread count, and prints
the ratios): the same GRPO training step with Hugging Face transformers'
Qwen3MoeForCausalLM, AReaL's own loss functions and torch.optim.AdamW.

  PYTHONPATH=$HOME/.cache/moerl/areal-oracle \\
      python3 tools/trainer/bench_grpo_step.py --dir DIR --threads 1 --steps 2

DIR holds config.json + model.safetensors (moerl's initial weights) and
batch.json ({"seqs": [{"tokens", "prompt_len", "behave", "reward"}],
"group_size", "max_tokens_per_mb", "lr", "gradient_clipping", "eps_clip"}).
One step, as AReaL's PPOActor runs it on one device (areal-reference.md
c.2/c.3) with prox = behave (no recompute, no decoupled loss): rewards
group-normalised into per-sequence advantages; for each micro-batch a forward
(padded [B, L] with an attention mask; attention as transformers picks it),
AReaL's gather_logprobs_entropy on the logits and ppo_actor_loss_fn over the
completion tokens, plus router_aux_loss_coef x HF's load-balancing loss,
each weighted by the micro-batch's share of the loss tokens; backward;
global-norm clipping; AdamW. The first (warm-up) step starts from the same
weights as moerl's, so its gradient norm must agree with moerl's.
Prints one JSON line:
  {"tokens_per_s", "tokens_per_cpu_s", "first_grad_norm", "first_loss", "threads"}

AReaL's gather_logprobs_entropy is wrapped in torch.compile; on CPU the
compile needs a C++ toolchain at run time and would be timed in the warm-up,
so it runs eagerly (TORCHDYNAMO_DISABLE=1) unless --compile.
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    if not args.compile:
        os.environ["TORCHDYNAMO_DISABLE"] = "1"
    import torch
    import transformers
    try:
        from areal.utils.functional import gather_logprobs_entropy, ppo_actor_loss_fn
    except ImportError as e:
        sys.exit(f"bench_grpo_step: cannot import AReaL ({e}); PYTHONPATH must name the folder "
                 "tools/setup.sh fills ($HOME/.cache/moerl/areal-oracle)")

    torch.set_num_threads(args.threads)
    batch = json.load(open(os.path.join(args.dir, "batch.json")))
    seqs = batch["seqs"]
    model = transformers.AutoModelForCausalLM.from_pretrained(args.dir, dtype=torch.float32)
    model.train()
    B = len(seqs)
    L = max(len(s["tokens"]) for s in seqs)
    ids = torch.zeros(B, L, dtype=torch.long)
    attn = torch.zeros(B, L, dtype=torch.long)
    # Rolled alignment (position i predicts token i + 1), as AReaL.
    loss_mask = torch.zeros(B, L, dtype=torch.bool)
    old_logp = torch.zeros(B, L)
    for b, s in enumerate(seqs):
        t, p = len(s["tokens"]), s["prompt_len"]
        ids[b, :t] = torch.tensor(s["tokens"])
        attn[b, :t] = 1
        loss_mask[b, p - 1 : t - 1] = True
        old_logp[b, p - 1 : t - 1] = torch.tensor(s["behave"])
    labels = torch.roll(ids, shifts=-1, dims=1)
    # Task rewards -> advantages (group mean/std, unbiased, eps 1e-5): every
    # completion token carries its sequence's value.
    r = torch.tensor([s["reward"] for s in seqs], dtype=torch.float64)
    g = r.view(-1, batch["group_size"])
    r1 = ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True, unbiased=True) + 1e-5)).view(-1).float()
    adv = torch.where(loss_mask, r1[:, None].expand(B, L), 0.0)

    # Micro-batches: whole sequences in order, at most max_tokens_per_mb
    # tokens each (moerl packs by first-fit decreasing; with equal lengths
    # the counts agree).
    cap = batch.get("max_tokens_per_mb") or sum(len(s["tokens"]) for s in seqs)
    micro, cur, cur_tokens = [], [], 0
    for b, s in enumerate(seqs):
        if cur and cur_tokens + len(s["tokens"]) > cap:
            micro.append(cur)
            cur, cur_tokens = [], 0
        cur.append(b)
        cur_tokens += len(s["tokens"])
    micro.append(cur)
    total_loss_tokens = loss_mask.sum().item()
    aux_coef = model.config.router_aux_loss_coef

    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=batch["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for mb in micro:
            out = model(input_ids=ids[mb], attention_mask=attn[mb], output_router_logits=True)
            logits = out.logits
            n = len(mb)
            logp, entropy = gather_logprobs_entropy(logits.reshape(n * L, -1), labels[mb].reshape(-1), 1.0)
            logp, entropy = logp.view(n, L), entropy.view(n, L).detach()
            loss, _ = ppo_actor_loss_fn(logprobs=logp, proximal_logprobs=old_logp[mb], old_logprobs=old_logp[mb],
                                        advantages=adv[mb], eps_clip=batch["eps_clip"], loss_mask=loss_mask[mb])
            share = loss_mask[mb].sum().item() / total_loss_tokens
            loss = (loss + aux_coef * out.aux_loss) * share
            loss.backward()
            total += loss.item()
        norm = torch.nn.utils.clip_grad_norm_(params, batch["gradient_clipping"])
        opt.step()
        return norm.item(), total

    first_norm, first_loss = step()  # warm-up, from moerl's initial weights
    tokens = int(attn.sum())
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    wall = (time.perf_counter() - start) / args.steps
    cpu = (time.process_time() - cpu_start) / args.steps
    print(json.dumps({"tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu,
                      "first_grad_norm": first_norm, "first_loss": first_loss, "threads": args.threads}))


if __name__ == "__main__":
    main()
