#!/usr/bin/env python3
"""Writes AReaL's own answers for moerl's advantage and PPO loss functions.

Random inputs over the option matrix (normalisation levels, leave-one-out,
unbiased std, KL estimators, GAE, no-EOS masking; clip higher, dual clip,
rejection sampling metrics/levels/actions, token vs sequence (GSPO) ratio) go
through AReaL 1.0.4's functions:

  norm: areal.utils.data.Normalization
  adv:  areal.trainer.ppo.actor.PPOActor._compute_advantages
  loss: areal.trainer.ppo.actor.grpo_loss_fn (which calls
        areal.utils.functional.ppo_actor_loss_fn and records the stats)

and the inputs and outputs are written to one safetensors file
(format "moerl-model-oracle" v1; tensors "<case>/<name>", the case list with
configs and scalar results as JSON in metadata "cases") that
trainer/areal_oracle_compare.cc replays through moerl.

  PYTHONPATH=$HOME/.cache/moerl/areal-oracle python3 tools/trainer/areal_oracle.py OUT.safetensors

AReaL comes from `pip install --no-deps --target` (tools/setup.sh), so it
never replaces the pinned torch.
"""

import argparse
import json
import sys
import types

import torch
from safetensors.torch import save_file


def import_areal():
    """AReaL's functions, from the installed package's own source. The
    packages areal.trainer and areal.trainer.ppo are entered without running
    their __init__ (it imports every trainer, and those need `datasets`);
    the modules we use are imported unchanged."""
    try:
        import importlib.util
        import areal

        root = importlib.util.find_spec("areal").submodule_search_locations[0]
        for name, sub in [("areal.trainer", "/trainer"), ("areal.trainer.ppo", "/trainer/ppo")]:
            package = types.ModuleType(name)
            package.__path__ = [root + sub]
            sys.modules[name] = package
        if areal.__version__ != "1.0.4":
            sys.exit(f"areal_oracle: found areal {areal.__version__}, expected 1.0.4")
        from areal.trainer.ppo.actor import PPOActor, grpo_loss_fn
        from areal.api.cli_args import NormConfig, RejectionSamplingConfig
        from areal.utils import stats_tracker
        from areal.utils.data import KLEstimator, Normalization
    except ImportError as e:
        sys.exit(f"areal_oracle: cannot import AReaL ({e}); run tools/setup.sh, which installs "
                 "areal 1.0.4 into $HOME/.cache/moerl/areal-oracle")
    return types.SimpleNamespace(PPOActor=PPOActor, grpo_loss_fn=grpo_loss_fn, NormConfig=NormConfig,
                                 RejectionSamplingConfig=RejectionSamplingConfig,
                                 stats_tracker=stats_tracker, KLEstimator=KLEstimator,
                                 Normalization=Normalization)


class Writer:
    def __init__(self):
        self.tensors = {}
        self.cases = []

    def add(self, case, **tensors):
        for k, v in tensors.items():
            if v is None:
                continue
            v = v.detach().contiguous()
            if v.dtype == torch.bool:
                v = v.float()
            self.tensors[f"{case['name']}/{k}"] = v.clone()
        self.cases.append(case)

    def save(self, path):
        meta = {"format": "moerl-model-oracle", "version": "1", "cases": json.dumps(self.cases)}
        save_file(self.tensors, path, metadata=meta)


def norm_dict(nc):
    return None if nc is None else dict(
        mean_level=nc.mean_level or "", std_level=nc.std_level or "",
        mean_leave1out=nc.mean_leave1out, std_unbiased=nc.std_unbiased, eps=nc.eps,
        group_size=nc.group_size)


def norm_cases(A, w, g):
    i = 0
    for shape in [(8,), (8, 6)]:
        for mean_level in ["batch", "group", None]:
            for std_level in ["batch", "group", None]:
                for leave1out in [False, True]:
                    for unbiased in [True, False]:
                        for group_size in [1, 4]:
                            if group_size == 1 and shape == (8, 6) and (mean_level, std_level) != ("group", "group"):
                                continue
                            nc = A.NormConfig(mean_level=mean_level, std_level=std_level,
                                              mean_leave1out=leave1out, std_unbiased=unbiased,
                                              group_size=group_size)
                            x = torch.randn(shape, generator=g) * 3
                            if shape == (8,):
                                x[:4] = torch.tensor([1.0, 1.0, 0.0, 1.0])  # a group with ties
                                x[4:8] = 2.0 if i % 3 == 0 else x[4:8]     # sometimes a flat group
                                mask = None if i % 2 == 0 else (torch.rand(shape, generator=g) > 0.3).float()
                            else:
                                mask = (torch.rand(shape, generator=g) > 0.4).float()
                                if i % 5 == 0:
                                    mask[:4] = 0  # a fully masked group
                            out = A.Normalization(nc)(x.clone(), None if mask is None else mask.clone())
                            w.add(dict(name=f"norm{i}", kind="norm", config=norm_dict(nc)),
                                  x=x, mask=mask, out=out)
                            i += 1


def adv_cases(A, w, g):
    B, L = 8, 12
    gsm8k_reward_norm = A.NormConfig(mean_level="group", std_level="group", group_size=4)
    presets = [
        dict(name="gsm8k", reward_bias=-0.5, reward_scaling=10.0, reward_norm=gsm8k_reward_norm,
             adv_norm=A.NormConfig()),
        dict(name="plain"),
        dict(name="clip", reward_scaling=50.0, reward_clip=20.0),
        dict(name="kl_k1", kl_ctl=0.1, kl_estimator="k1", ref=True, adv_norm=A.NormConfig()),
        dict(name="kl_k2", kl_ctl=0.3, kl_estimator="k2", ref=True),
        dict(name="kl_k3", kl_ctl=0.2, kl_estimator="k3", ref=True, discount=0.9, gae_lambda=0.8),
        dict(name="gae", discount=0.95, gae_lambda=0.7, adv_norm=A.NormConfig(std_unbiased=False)),
        dict(name="no_eos", mask_no_eos_with_zero=True, reward_bias=-0.5,
             reward_norm=A.NormConfig(mean_level="batch", std_level="batch")),
        dict(name="rloo", reward_norm=A.NormConfig(mean_level="group", std_level=None,
                                                   mean_leave1out=True, group_size=4)),
        dict(name="dr_grpo", adv_norm=A.NormConfig(mean_level="group", std_level=None, group_size=4)),
        dict(name="lite_ppo", adv_norm=A.NormConfig(mean_level="group", std_level="batch", group_size=2)),
        dict(name="kl_noref", kl_ctl=0.5, kl_estimator="k3"),
    ]
    for p in presets:
        prompt = torch.randint(1, 4, (B,), generator=g)
        seqlens = torch.clamp(prompt + torch.randint(1, L, (B,), generator=g), max=L)
        seqlens[1] = L  # one row without EOS
        seqlens[5] = L
        pos = torch.arange(L).unsqueeze(0)
        attn = (pos < seqlens.unsqueeze(1))
        loss_mask = ((pos >= prompt.unsqueeze(1)) & attn).float()
        behave = torch.where(loss_mask > 0, -torch.rand(B, L, generator=g) * 3, torch.zeros(B, L))
        ref = (-torch.rand(B, L, generator=g) * 3) if p.get("ref") else None
        rewards = (torch.rand(B, generator=g) > 0.5).float()
        rewards[4:8] = 1.0  # a group where every answer is right
        cfg = types.SimpleNamespace(overlong_reward_penalty=False, use_decoupled_loss=True,
                                    recompute_logprob=True)
        actor = object.__new__(A.PPOActor)
        actor.config = cfg
        actor.reward_bias = p.get("reward_bias", 0.0)
        actor.reward_scaling = p.get("reward_scaling", 1.0)
        actor.reward_clip = p.get("reward_clip", 20.0)
        actor.kl_ctl = p.get("kl_ctl", 0.0)
        actor.kl_estimator = A.KLEstimator(p.get("kl_estimator", "k1"))
        actor.adv_norm = A.Normalization(p["adv_norm"]) if p.get("adv_norm") else None
        actor.reward_norm = A.Normalization(p["reward_norm"]) if p.get("reward_norm") else None
        actor.discount = p.get("discount", 1.0)
        actor.gae_lambda = p.get("gae_lambda", 1.0)
        actor.mask_no_eos_with_zero = p.get("mask_no_eos_with_zero", False)
        data = dict(input_ids=torch.zeros(B, L, dtype=torch.long), rewards=rewards.clone(),
                    loss_mask=loss_mask.clone(), logprobs=behave.clone(), attention_mask=attn.clone(),
                    prox_logp=torch.zeros(B, L))
        if ref is not None:
            # AReaL's ref engine returns rolled log-probs; moerl takes them unrolled like behave.
            data["ref_logp"] = torch.roll(ref, shifts=-1, dims=-1).clone()
        out = A.PPOActor._compute_advantages(actor, data)
        config = dict(reward_bias=actor.reward_bias, reward_scaling=actor.reward_scaling,
                      reward_clip=actor.reward_clip, reward_norm=norm_dict(p.get("reward_norm")),
                      adv_norm=norm_dict(p.get("adv_norm")), kl_ctl=actor.kl_ctl,
                      kl_estimator=p.get("kl_estimator", "k1"), discount=actor.discount,
                      gae_lambda=actor.gae_lambda, mask_no_eos_with_zero=actor.mask_no_eos_with_zero)
        w.add(dict(name="adv_" + p["name"], kind="adv", config=config),
              rewards=rewards, loss_mask=loss_mask, behave=behave, ref=ref,
              seqlens=seqlens.long(), no_eos=(seqlens == L),
              advantages=out["advantages"], kl_rewards=out["kl_rewards"],
              tot_rewards=out["tot_rewards"], rolled_mask=out["loss_mask"],
              rolled_logp=out["logprobs"], returns=out["returns"])


def loss_inputs(g, seq_lens):
    n = sum(seq_lens)
    mask = (torch.rand(n, generator=g) > 0.25).float()
    mask[sum(seq_lens[:2]):sum(seq_lens[:3])] = 0  # a fully masked sequence
    behave = -torch.rand(n, generator=g) * 4
    prox = behave + torch.randn(n, generator=g) * 0.6
    logp = prox + torch.randn(n, generator=g) * 0.3
    logp[::5] += 1.2  # ratios past the dual clip's c for some tokens
    adv = torch.randn(n, generator=g)
    adv[::7] = 0.0
    entropy = torch.rand(n, generator=g) * 2
    return logp, prox, behave, adv, mask, entropy


def loss_cases(A, w, g):
    rs_variants = [
        None,
        dict(metric="ratio", level="token", action="mask", upper=2.0),
        dict(metric="ratio", level="token", action="mask", upper=2.0, lower=0.5),
        dict(metric="ratio", level="token", action="clamp", upper=1.5),
        dict(metric="ratio", level="token", action="clamp", upper=2.0, lower=0.7),
        dict(metric="ratio", level="sequence", agg="mean", action="mask", upper=1.3, lower=0.8),
        dict(metric="ratio", level="sequence", agg="sum", action="mask", upper=3.0),
        dict(metric="ratio", level="sequence", agg="max", action="mask", upper=3.0),
        dict(metric="ratio", level="sequence", agg="mean", action="clamp", upper=1.2, lower=0.9),
        dict(metric="kl_k1", level="token", action="mask", upper=0.5, lower=-0.5),
        dict(metric="kl_k2", level="token", action="mask", upper=0.2),
        dict(metric="kl_k3", level="token", action="mask", upper=0.2),
        dict(metric="kl_k2", level="sequence", agg="mean", action="mask", upper=0.15),
        dict(metric="kl_k3", level="sequence", agg="max", action="mask", upper=0.6),
        dict(metric="kl_k1", level="sequence", agg="sum", action="mask", upper=1.0),
    ]
    clip_variants = [dict(), dict(eps_clip_higher=0.28), dict(c_clip=3.0),
                     dict(eps_clip_higher=0.28, c_clip=2.0)]
    i = 0
    for rs in rs_variants:
        for level in ["token", "sequence"]:
            for clip in clip_variants:
                seq_lens = [int(x) for x in torch.randint(1, 12, (6,), generator=g)]
                logp, prox, behave, adv, mask, entropy = loss_inputs(g, seq_lens)
                eps_clip = 0.2 if i % 2 == 0 else 0.4
                lp = logp.clone().requires_grad_(True)
                cu = torch.tensor([0] + list(torch.tensor(seq_lens).cumsum(0)), dtype=torch.int32)
                rs_cfg = A.RejectionSamplingConfig(**rs) if rs is not None else None
                input_data = dict(logprobs=behave.clone(), advantages=adv.clone(),
                                  loss_mask=mask.clone(), prox_logp=prox.clone(), cu_seqlens=cu)
                A.stats_tracker.export(reset=True)
                loss = A.grpo_loss_fn(lp, entropy.clone(), input_data, eps_clip=eps_clip,
                                      eps_clip_higher=clip.get("eps_clip_higher"),
                                      c_clip=clip.get("c_clip"), rejection_sampling=rs_cfg,
                                      importance_sampling_level=level, use_decoupled_loss=True)
                loss.backward()
                stats = A.stats_tracker.export(reset=True)
                config = dict(eps_clip=eps_clip, eps_clip_higher=clip.get("eps_clip_higher"),
                              c_clip=clip.get("c_clip"), importance_sampling_level=level,
                              # As the user wrote it (AReaL's __post_init__ fills lower=0
                              # for clamp, which moerl does inside the loss).
                              rejection_sampling=None if rs is None else dict(
                                  metric=rs["metric"], level=rs["level"],
                                  agg=rs.get("agg", "mean"), action=rs["action"],
                                  lower=rs.get("lower"), upper=rs["upper"]))
                w.add(dict(name=f"loss{i}", kind="loss", config=config, seq_lens=seq_lens,
                           loss=loss.detach().item(), stats={k: float(v) for k, v in stats.items()}),
                      logp=logp, prox=prox, behave=behave, adv=adv, mask=mask, entropy=entropy,
                      grad=lp.grad)
                i += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=20260501)
    args = ap.parse_args()
    A = import_areal()
    g = torch.Generator().manual_seed(args.seed)
    w = Writer()
    norm_cases(A, w, g)
    adv_cases(A, w, g)
    loss_cases(A, w, g)
    w.save(args.out)
    kinds = {}
    for c in w.cases:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    print(f"areal_oracle: wrote {len(w.cases)} cases {kinds} to {args.out}")


if __name__ == "__main__":
    main()
