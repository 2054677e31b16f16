"""One GRPO training step with Hugging Face transformers and torch.optim.AdamW,
compared with the step moerl's trainer took (grpo_step_fixture).

  python3 grpo_step_oracle.py OUT MODEL_DIR

OUT/batch.json holds the sequences, behaviour log-probs and rewards;
OUT/oracle/t0/weights/v1/model.safetensors moerl's weights after the step.
The step (areal-reference.md c.2/c.3, the fixture's settings): r1 =
clip((r - 0.5) * 10, +-20), group-normalised (unbiased std, eps 1e-5) over
groups of 4; every completion token's advantage is its sequence's r1; PPO
clip 0.2 with prox = behave; loss = sum over completion tokens / their count
+ router_aux_loss_coef * HF's load-balancing loss; no clipping;
AdamW(lr 1e-3, wd 0.01, eps 1e-2). Exits 1 if any weight differs by more than 1e-5
relative to the largest weight of its tensor.
"""
import json
import sys

import torch
import transformers
from safetensors.torch import load_file


def main():
    out, model_dir = sys.argv[1], sys.argv[2]
    batch = json.load(open(f"{out}/batch.json"))
    seqs = batch["seqs"]
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager")
    model.train()
    B = len(seqs)
    L = max(len(s["tokens"]) for s in seqs)
    ids = torch.zeros(B, L, dtype=torch.long)
    mask = torch.zeros(B, L, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s["tokens"])] = torch.tensor(s["tokens"])
        mask[b, : len(s["tokens"])] = 1

    r = torch.tensor([s["reward"] for s in seqs], dtype=torch.float32)
    r1 = ((r - 0.5) * 10.0).clamp(-20, 20).double()
    g = r1.view(-1, 4)
    r1 = ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True, unbiased=True) + 1e-5)).view(-1).float()

    o = model(input_ids=ids, attention_mask=mask, output_router_logits=True)
    logp_all = torch.log_softmax(o.logits.float(), -1)
    losses, n = [], 0
    for b, s in enumerate(seqs):
        p = s["prompt_len"]
        t = len(s["tokens"])
        tgt = ids[b, p:t]
        lp = logp_all[b, p - 1 : t - 1].gather(1, tgt[:, None])[:, 0]
        behave = torch.tensor(s["behave"], dtype=torch.float32)
        ratio = torch.exp(lp - behave)
        a = r1[b]
        loss_t = torch.maximum(-a * ratio, -a * ratio.clamp(0.8, 1.2))
        losses.append(loss_t.sum())
        n += t - p
    loss = torch.stack(losses).sum() / n + model.config.router_aux_loss_coef * o.aux_loss
    loss.backward()
    params = [p for p in model.parameters()]
    # No clipping and eps 1e-2 (the fixture's settings): the update then
    # depends on the gradient's scale, so a wrong loss normalisation shows.
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-2, weight_decay=0.01)
    opt.step()

    ours = load_file(f"{out}/oracle/t0/weights/v1/model.safetensors")
    worst = 0.0
    for name, p in model.named_parameters():
        w = p.detach()
        pairs = []
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            f = w.shape[1] // 2
            for e in range(w.shape[0]):
                pairs.append((f"{prefix}{e}.gate_proj.weight", w[e, :f]))
                pairs.append((f"{prefix}{e}.up_proj.weight", w[e, f:]))
        elif name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            for e in range(w.shape[0]):
                pairs.append((f"{prefix}{e}.down_proj.weight", w[e]))
        else:
            pairs.append((name, w))
        for key, ref in pairs:
            got = ours[key]
            rel = ((got - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item()
            worst = max(worst, rel)
            if rel > 1e-5:
                print(f"{key}: max |moerl - oracle| / max |oracle| = {rel:.3e}")
    print(f"grpo step oracle: loss {loss.item():.6f}, worst relative weight difference {worst:.3e}")
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main()
