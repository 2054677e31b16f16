#!/usr/bin/env python3
"""Builds tiny random Qwen3-MoE and Qwen3 dense HF checkpoints and the oracle
fixtures the C++ model tests compare against (transformers is the oracle).

  python3 tools/model/make_oracle_fixture.py            # writes trainer/model/testdata/
  python3 tools/model/make_oracle_fixture.py --verify DIR --fixture trainer/model/testdata/moe/oracle.safetensors
      # loads a checkpoint moerl wrote (bazel run //trainer/model:hf_resave) in
      # transformers and checks its logits against the fixture.

For each model, <out>/<name>/ holds config.json + model.safetensors (the HF
checkpoint, sharded for the MoE model so the index path is exercised) and
oracle.safetensors, the fixture. The fixture is itself a safetensors file; its
__metadata__ is the header: format "moerl-model-oracle", version "1", the
generator, transformers/torch versions and scalar results. Tensors:
  input_ids [B, L] I64            training batch (B sequences, no padding)
  logits    [B, L, V] F32         transformers' logits
  loss      []  F32               mean next-token CE (+ coef * aux for MoE)
  aux_loss  []  F32               load-balancing loss (MoE only)
  router.<layer>.topk_ids [B*L, k] I64   chosen experts per MoE layer
  grad.<hf name> F32              d loss / d parameter, in checkpoint naming
  generate.<i>.prompt [n] I64, generate.<i>.output [n + m] I64   greedy generate()
"""
import argparse
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file, load_file

FORMAT = "moerl-model-oracle"
VERSION = "1"
B, L = 2, 12
GEN_PROMPTS = [[5, 17, 33, 2, 90], [7], [100, 3, 3, 41, 8, 12, 64, 1, 77]]
GEN_NEW_TOKENS = 10


def moe_config():
    return transformers.Qwen3MoeConfig(
        vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, hidden_act="silu",
        max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=10000.0,
        attention_bias=False, decoder_sparse_step=1, mlp_only_layers=[1],
        moe_intermediate_size=32, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=True, output_router_logits=True, router_aux_loss_coef=0.01,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)


def dense_config():
    return transformers.Qwen3Config(
        vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=16, hidden_act="silu",
        max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=1000000.0,
        attention_bias=False, tie_word_embeddings=True, use_sliding_window=False,
        bos_token_id=1, eos_token_id=2)


def checkpoint_grads(model, is_moe):
    """Gradients under checkpoint (on-disk) names: fused experts split per expert."""
    out = {}
    for name, p in model.named_parameters():
        g = p.grad.detach().float().contiguous()
        if is_moe and name.endswith("mlp.experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            inter = g.shape[1] // 2
            for e in range(g.shape[0]):
                out[f"grad.{prefix}{e}.gate_proj.weight"] = g[e, :inter].contiguous()
                out[f"grad.{prefix}{e}.up_proj.weight"] = g[e, inter:].contiguous()
        elif is_moe and name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            for e in range(g.shape[0]):
                out[f"grad.{prefix}{e}.down_proj.weight"] = g[e].contiguous()
        else:
            out[f"grad.{name}"] = g
    if getattr(model.config, "tie_word_embeddings", False):
        out.pop("grad.lm_head.weight", None)
    return out


def build(name, config, out_dir, seed, is_moe):
    torch.manual_seed(seed)
    cls = transformers.Qwen3MoeForCausalLM if is_moe else transformers.Qwen3ForCausalLM
    model = cls._from_config(config, attn_implementation="eager", dtype=torch.float32)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))  # non-trivial norms
            elif pname.endswith("mlp.gate.weight"):
                p.normal_(0.0, 0.5)  # decisive routing: no near-ties in top-k
            else:
                p.normal_(0.0, 0.08)
    model.eval()
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    # Sharded for MoE (exercises model.safetensors.index.json), single file for dense.
    model.save_pretrained(d, max_shard_size="400KB" if is_moe else "50MB")

    g = torch.Generator().manual_seed(seed + 1)
    input_ids = torch.randint(0, config.vocab_size, (B, L), generator=g)
    fixture = {"input_ids": input_ids}
    if is_moe:
        out = model(input_ids=input_ids, labels=input_ids, output_router_logits=True)
        fixture["aux_loss"] = out.aux_loss.detach().float().reshape(())
        k = config.num_experts_per_tok
        moe_layer = 0
        for li in range(config.num_hidden_layers):
            if li in config.mlp_only_layers:
                continue
            rl = out.router_logits[moe_layer]
            probs = torch.softmax(rl.float(), dim=-1)
            fixture[f"router.{li}.topk_ids"] = torch.topk(probs, k, dim=-1).indices.contiguous()
            moe_layer += 1
    else:
        out = model(input_ids=input_ids, labels=input_ids)
    out.loss.backward()
    fixture["logits"] = out.logits.detach().float().contiguous()
    fixture["loss"] = out.loss.detach().float().reshape(())
    fixture.update(checkpoint_grads(model, is_moe))

    with torch.no_grad():
        for i, prompt in enumerate(GEN_PROMPTS):
            ids = torch.tensor([prompt])
            gen = model.generate(ids, max_new_tokens=GEN_NEW_TOKENS, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
            fixture[f"generate.{i}.prompt"] = ids[0].clone()
            fixture[f"generate.{i}.output"] = gen[0].clone()

    meta = {"format": FORMAT, "version": VERSION,
            "generator": "tools/model/make_oracle_fixture.py",
            "transformers": transformers.__version__, "torch": torch.__version__,
            "model": name, "loss": repr(float(out.loss))}
    save_file(fixture, os.path.join(d, "oracle.safetensors"), metadata=meta)
    print(f"{name}: loss={float(out.loss):.6f} files={sorted(os.listdir(d))}")


def verify(ckpt_dir, fixture_path):
    fx = load_file(fixture_path)
    cfg = transformers.AutoConfig.from_pretrained(ckpt_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        ckpt_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=fx["input_ids"]).logits
    diff = (logits - fx["logits"]).abs().max().item()
    print(f"verify {ckpt_dir} ({cfg.model_type}): max |logits - fixture| = {diff:.3e}")
    if diff > 1e-5:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="trainer/model/testdata")
    ap.add_argument("--verify", help="checkpoint dir to load in transformers")
    ap.add_argument("--fixture", help="oracle.safetensors to compare --verify against")
    args = ap.parse_args()
    if args.verify:
        verify(args.verify, args.fixture)
        return
    torch.set_num_threads(1)
    build("moe", moe_config(), args.out, 1234, True)
    build("dense", dense_config(), args.out, 4321, False)


if __name__ == "__main__":
    main()
