#!/usr/bin/env python3
"""The inference server over HTTP against Hugging Face transformers, and
AReaL's own SGLang client against the server.

Starts the `rollout/server` binary on a tiny Qwen3-MoE checkpoint, sends
greedy `/generate` requests over HTTP and compares them with transformers'
`generate()` on the same checkpoint (one prompt at a time, no padding):

  - output ids exactly, and `output_token_logprobs` within --tol of
    log_softmax(generate's raw logits) (greedy: T = 1, unfiltered);
  - a single request, a batch of ragged prompts with one sampling_params per
    row (answered as a JSON array), concurrent single requests, and a stop on
    `stop_token_ids` (transformers stops on the same id as an EOS);
  - the prompt log-probs of a scoring request (`input_token_logprobs`) against
    transformers' forward.

Then AReaL 1.0.4's `SGLangBackend` (areal/engine/sglang_remote.py), unchanged,
builds the requests and parses the answers: a generation request (with
`return_routed_experts`, checked against transformers' router top-k), a
scoring request (built by AReaL, read here: see check_areal), and the disk weight-update sequence pause ->
update_weights_from_disk -> continue, after which generations must match
transformers on the new checkpoint (which, unlike the first, stops on EOS).

  python3 tools/server/http_oracle.py --server bazel-bin/rollout/server/server \
      --config rollout/server/testdata/tiny.yaml --checkpoint trainer/model/testdata/moe \
      --areal $HOME/.cache/moerl/areal-oracle --tmp /tmp/http_oracle

Exits non-zero on the first mismatch, printing the largest difference.
"""
import argparse
import base64
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import torch
import transformers
from safetensors.torch import load_file, save_file

EOS = 2


class Mismatch(Exception):
    pass


def post(address, path, body, timeout=120):
    req = urllib.request.Request(address + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
    except urllib.error.HTTPError as e:
        raise Mismatch(f"POST {path} {json.dumps(body)[:300]}: HTTP {e.code}: {e.read().decode()[:500]}")
    return json.loads(text) if text.strip() else None


def start_server(args, checkpoint, log_path):
    addr_file = os.path.join(args.tmp, "server.addr")
    if os.path.exists(addr_file):
        os.remove(addr_file)
    log = open(log_path, "w")
    proc = subprocess.Popen([args.server, "--config", args.config, f"actor.path={checkpoint}",
                             f"server.address_file={addr_file}"] + args.override,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Mismatch(f"the server exited with {proc.returncode}:\n" + open(log_path).read())
        if os.path.exists(addr_file) and os.path.getsize(addr_file) > 0:
            return proc, open(addr_file).read().strip()
        time.sleep(0.1)
    proc.kill()
    raise Mismatch("the server wrote no address file within 120 s:\n" + open(log_path).read())


class Oracle:
    """transformers on one checkpoint: greedy generate(), prompt log-probs, router top-k."""

    def __init__(self, checkpoint):
        self.model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
        self.model.eval()
        # generate() fills unset GenerationConfig fields from the checkpoint's
        # generation_config.json (eos 2): stop ids are given per call only.
        self.model.generation_config.eos_token_id = None
        self.config = self.model.config

    @torch.no_grad()
    def generate(self, prompt, max_new_tokens, stop_ids=()):
        """Greedy ids and the log-prob of each under log_softmax(raw logits).
        Stops after an id in stop_ids (included, as SGLang's output_ids do)."""
        ids = torch.tensor([prompt])
        gen_config = transformers.GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0,
            eos_token_id=list(stop_ids) if stop_ids else None,
            output_logits=True, return_dict_in_generate=True)
        out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                  generation_config=gen_config)
        new = out.sequences[0, len(prompt):].tolist()
        if len(new) != max_new_tokens and new[-1] not in stop_ids:
            raise Mismatch(f"transformers stopped after {len(new)} of {max_new_tokens} tokens on {new[-1]}")
        logprobs = [torch.log_softmax(step[0].float(), -1)[tok].item() for step, tok in zip(out.logits, new)]
        return new, logprobs

    @torch.no_grad()
    def prompt_logprobs(self, ids):
        """log p(ids[i] | ids[:i]) for i >= 1."""
        logits = self.model(input_ids=torch.tensor([ids])).logits[0].float()
        lp = torch.log_softmax(logits[:-1], -1)
        return lp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()

    @torch.no_grad()
    def routed_experts(self, ids):
        """[len(ids), moe_layers * k]: each MoE layer's top-k experts per
        position, in descending router probability, MoE layers in order."""
        out = self.model(input_ids=torch.tensor([ids]), output_router_logits=True)
        k = self.config.num_experts_per_tok
        per_layer = [torch.topk(logits.reshape(len(ids), -1).float(), k, dim=-1).indices
                     for logits in out.router_logits if logits is not None]
        return torch.cat(per_layer, dim=-1).tolist()


def expect_ids(what, got, want):
    if got != want:
        raise Mismatch(f"{what}: output ids differ\n  server:       {got}\n  transformers: {want}")


def expect_close(what, got, want, tol):
    if len(got) != len(want):
        raise Mismatch(f"{what}: {len(got)} log-probs, transformers has {len(want)}")
    diff = max((abs(a - b) for a, b in zip(got, want)), default=0.0)
    if diff > tol:
        raise Mismatch(f"{what}: max |log-prob difference| {diff:.3g} > {tol}\n  server:       {got}\n"
                       f"  transformers: {want}")
    return diff


class Checker:
    def __init__(self, oracle, tol):
        self.oracle, self.tol, self.max_diff, self.cases = oracle, tol, 0.0, 0

    def generation(self, what, response, prompt, max_new_tokens, stop_ids=()):
        """One SGLang /generate answer against transformers."""
        want_ids, want_lp = self.oracle.generate(prompt, max_new_tokens, stop_ids)
        meta = response["meta_info"]
        triples = meta["output_token_logprobs"]
        expect_ids(what, response["output_ids"], want_ids)
        expect_ids(what + " (output_token_logprobs ids)", [t[1] for t in triples], want_ids)
        self.max_diff = max(self.max_diff, expect_close(what, [t[0] for t in triples], want_lp, self.tol))
        if meta["prompt_tokens"] != len(prompt) or meta["completion_tokens"] != len(want_ids):
            raise Mismatch(f"{what}: prompt_tokens/completion_tokens {meta['prompt_tokens']}/"
                           f"{meta['completion_tokens']}, expected {len(prompt)}/{len(want_ids)}")
        stopped = bool(stop_ids) and want_ids[-1] in stop_ids
        want_reason = {"type": "stop", "matched": want_ids[-1]} if stopped else \
            {"type": "length", "length": max_new_tokens}
        if meta["finish_reason"] != want_reason:
            raise Mismatch(f"{what}: finish_reason {meta['finish_reason']}, expected {want_reason}")
        self.cases += 1


def greedy(max_new_tokens, **extra):
    return dict({"max_new_tokens": max_new_tokens, "temperature": 0, "ignore_eos": True}, **extra)


def check_native(address, check, oracle):
    """SGLang's native /generate shapes, sent by hand."""
    prompts = [[5, 17, 33, 2, 90], [7], [100, 3, 3, 41, 8, 12, 64, 1, 77], [64] * 20 + [9, 31]]
    lengths = [12, 9, 16, 5]

    one = post(address, "/generate", {"input_ids": prompts[0], "sampling_params": greedy(lengths[0]),
                                      "return_logprob": True})
    check.generation("single request", one, prompts[0], lengths[0])

    batch = post(address, "/generate", {"input_ids": prompts,
                                        "sampling_params": [greedy(n) for n in lengths],
                                        "return_logprob": True})
    if not isinstance(batch, list) or len(batch) != len(prompts):
        raise Mismatch(f"a batch of {len(prompts)} was not answered by a list of {len(prompts)}: {batch}")
    for i, (out, prompt, n) in enumerate(zip(batch, prompts, lengths)):
        check.generation(f"batch row {i} (prompt of {len(prompt)})", out, prompt, n)

    # Concurrent clients: continuous batching must not change greedy results.
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        outs = list(pool.map(lambda pn: post(address, "/generate", {
            "input_ids": pn[0], "sampling_params": greedy(pn[1]), "return_logprob": True}),
            zip(prompts, lengths)))
    for i, (out, prompt, n) in enumerate(zip(outs, prompts, lengths)):
        check.generation(f"concurrent request {i}", out, prompt, n)

    # A stop id: the 4th greedy token of prompts[2] (transformers takes it as an EOS).
    ids, _ = oracle.generate(prompts[2], 16)
    stop = ids[3]
    out = post(address, "/generate", {"input_ids": prompts[2],
                                      "sampling_params": greedy(16, stop_token_ids=[stop]),
                                      "return_logprob": True})
    check.generation(f"stop_token_ids=[{stop}]", out, prompts[2], 16, stop_ids=(stop,))

    # EOS honoured (ignore_eos false): transformers with eos_token_id = 2.
    out = post(address, "/generate", {"input_ids": prompts[1],
                                      "sampling_params": {"max_new_tokens": 24, "temperature": 0},
                                      "return_logprob": True})
    check.generation("ignore_eos false", out, prompts[1], 24, stop_ids=(EOS,))

    # Scoring: the probe's shape (max_new_tokens 0, logprob_start_len 0).
    prompt = prompts[2] + ids
    score = post(address, "/generate", {"input_ids": prompt, "sampling_params": {"max_new_tokens": 0},
                                        "return_logprob": True, "logprob_start_len": 0})
    triples = score["meta_info"]["input_token_logprobs"]
    if triples[0][0] is not None or [t[1] for t in triples] != prompt:
        raise Mismatch(f"input_token_logprobs ids/first entry wrong: {triples}")
    check.max_diff = max(check.max_diff, expect_close("input_token_logprobs", [t[0] for t in triples[1:]],
                                                      oracle.prompt_logprobs(prompt), check.tol))
    check.cases += 1


def import_areal(areal_dir):
    if not areal_dir or not os.path.isfile(os.path.join(areal_dir, "areal", "__init__.py")):
        raise SystemExit(f"http_oracle: AReaL is not installed in '{areal_dir}'; run tools/setup.sh "
                         "(then 'bazel sync --configure' if Bazel looked before it was there)")
    sys.path.insert(0, areal_dir)
    # AReaL decodes routed_experts with pybase64, a faster drop-in for the
    # standard module that the oracle folder does not carry.
    sys.modules.setdefault("pybase64", base64)
    from areal.api.cli_args import GenerationHyperparameters
    from areal.api.io_struct import ModelRequest, WeightUpdateMeta
    from areal.engine.sglang_remote import SGLangBackend
    return SGLangBackend(), ModelRequest, GenerationHyperparameters, WeightUpdateMeta


def areal_send(address, http_request):
    return post(address, http_request.endpoint, http_request.payload)


def check_areal(address, check, oracle, areal, new_checkpoint):
    """AReaL's client code, unchanged, against the server."""
    backend, ModelRequest, GenerationHyperparameters, WeightUpdateMeta = areal
    prompt, n = [100, 3, 3, 41, 8, 12, 64, 1, 77], 10

    # Generation as AReaL's RemoteInfEngine.agenerate builds it (its defaults:
    # image_data [], top_k 1e8, frequency_penalty 0), with routed experts.
    req = ModelRequest(input_ids=prompt, gconfig=GenerationHyperparameters(
        greedy=True, max_new_tokens=n, ignore_eos=True), metadata={"return_routed_experts": True})
    http = backend.build_generation_request(req, with_lora=False, version=0)
    raw = areal_send(address, http)
    check.generation("AReaL generation request", raw, prompt, n)
    result = backend.parse_generation_response(raw)
    want_ids, want_lp = oracle.generate(prompt, n)
    expect_ids("AReaL parse_generation_response", list(result.output_tokens), want_ids)
    expect_close("AReaL parse_generation_response", list(result.output_logprobs), want_lp, check.tol)
    if result.stop_reason != "length":
        raise Mismatch(f"AReaL stop_reason {result.stop_reason}, expected length")
    # SGLang's rows: every position that went through the model.
    routed = result.routed_experts.tolist()
    want_routed = oracle.routed_experts(prompt + want_ids[:-1])
    if routed != want_routed:
        rows = [i for i, (a, b) in enumerate(zip(routed, want_routed)) if a != b]
        raise Mismatch(f"routed_experts differ from transformers' router top-k at rows {rows} "
                       f"(shapes {len(routed)} vs {len(want_routed)} rows)")
    check.cases += 1

    # Scoring as AReaL's teacher log-probs request builds it. Its
    # parse_score_response is not used: it calls float() on every entry,
    # and SGLang (as this server) answers null for the position at
    # logprob_start_len ("Always pad the first one with None").
    target = 6
    full = prompt + want_ids
    raw = areal_send(address, backend.build_score_request(full, target, with_lora=False, version=0))
    triples = raw["meta_info"]["input_token_logprobs"]
    if len(triples) != target + 1 or triples[0][0] is not None:
        raise Mismatch(f"AReaL score request: expected {target + 1} input_token_logprobs, the first null; "
                       f"found {triples}")
    score = [t[0] for t in triples[1:]]
    check.max_diff = max(check.max_diff, expect_close("AReaL score request", score,
                                                      oracle.prompt_logprobs(full)[-target:], check.tol))
    check.cases += 1

    # The disk weight update as AReaL's engine sends it: pause, update, continue.
    for http in [backend.get_pause_request()] + \
            backend.build_disk_weight_update_requests(WeightUpdateMeta(type="disk", path=new_checkpoint)).requests + \
            [backend.get_resume_request()]:
        answer = areal_send(address, http)
        if http.endpoint == "/update_weights_from_disk" and not (answer or {}).get("success"):
            raise Mismatch(f"update_weights_from_disk failed: {answer}")
    new_oracle = Oracle(new_checkpoint)
    before, _ = oracle.generate(prompt, n)
    after = Checker(new_oracle, check.tol)
    raw = areal_send(address, backend.build_generation_request(ModelRequest(
        input_ids=prompt, gconfig=GenerationHyperparameters(greedy=True, max_new_tokens=n, ignore_eos=True)),
        with_lora=False, version=1))
    after.generation("AReaL generation after the weight update", raw, prompt, n)
    if raw["output_ids"] == before:
        raise Mismatch("the updated checkpoint gives the same greedy ids as the first: the update is not shown")
    # AReaL's default ignore_eos false: the updated model emits EOS (2) early
    # on this prompt; the server stops there as transformers does.
    raw = areal_send(address, backend.build_generation_request(ModelRequest(
        input_ids=prompt, gconfig=GenerationHyperparameters(greedy=True, max_new_tokens=n)),
        with_lora=False, version=1))
    after.generation("AReaL generation with EOS", raw, prompt, n, stop_ids=(EOS,))
    result = backend.parse_generation_response(raw)
    if result.stop_reason != "stop" or result.output_tokens[-1] != EOS or len(result.output_tokens) == n:
        raise Mismatch(f"expected an early stop on EOS, AReaL parsed {result}")
    check.max_diff = max(check.max_diff, after.max_diff)
    check.cases += after.cases


def perturbed_copy(checkpoint, out):
    """The checkpoint with a changed final norm: a different policy, same architecture."""
    if os.path.exists(out):
        shutil.rmtree(out)
    shutil.copytree(checkpoint, out, ignore=shutil.ignore_patterns("oracle.safetensors"))
    index = os.path.join(out, "model.safetensors.index.json")
    shard = json.load(open(index))["weight_map"]["model.norm.weight"] if os.path.exists(index) \
        else "model.safetensors"
    tensors = load_file(os.path.join(out, shard))
    g = torch.Generator().manual_seed(1)
    tensors["model.norm.weight"] = tensors["model.norm.weight"] * 1.5 + \
        torch.randn(tensors["model.norm.weight"].shape, generator=g)
    save_file(tensors, os.path.join(out, shard), metadata={"format": "pt"})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="the rollout/server binary")
    ap.add_argument("--config", required=True, help="its YAML (rollout/server/testdata/tiny.yaml)")
    ap.add_argument("--checkpoint", required=True, help="an HF Qwen3-MoE checkpoint folder")
    ap.add_argument("--areal", default="", help="the AReaL oracle folder (its parent of areal/)")
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for transformers")
    ap.add_argument("override", nargs="*", help="server key=value overrides")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.tmp, exist_ok=True)

    areal = import_areal(args.areal)
    oracle = Oracle(args.checkpoint)
    check = Checker(oracle, args.tol)
    new_checkpoint = perturbed_copy(args.checkpoint, os.path.join(args.tmp, "updated"))
    log_path = os.path.join(args.tmp, "server.log")
    proc, address = start_server(args, args.checkpoint, log_path)
    try:
        check_native(address, check, oracle)
        check_areal(address, check, oracle, areal, new_checkpoint)
    except Mismatch as e:
        print(f"FAIL: {e}\n--- server log ---\n" + open(log_path).read()[-4000:], file=sys.stderr)
        proc.kill()
        return 1
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=60)
    if rc != 0:
        print(f"FAIL: the server exited with {rc} on SIGTERM\n" + open(log_path).read()[-4000:], file=sys.stderr)
        return 1
    print(f"PASS: {check.cases} cases, max |log-prob - transformers| {check.max_diff:.3g} (tolerance {args.tol})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
