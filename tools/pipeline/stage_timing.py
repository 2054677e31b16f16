#!/usr/bin/env python3
"""Prints where each stage of a finished run spent its wall time.

    python3 tools/pipeline/stage_timing.py RUN_DIR

Reads the last `stage_timing {...}` line of each RUN_DIR/logs/<stage>.log
(feeder, bridge, scorer, server.<i>: common/stage_timing.h logs one every
30 s and one at exit) and the trainer's timeperf/* statistics in
RUN_DIR/stats.jsonl, and prints a Markdown table: per stage its wall time,
the shares spent waiting (for input, on output), in transport (ring copies
and acknowledgements, protobuf and JSON, batch and weight files), in timed
compute, and the untimed rest; then the run's generated tokens/s (completion
tokens the bridge pushed, over the bridge's wall time) and trained tokens/s
(the trainer's prompt + completion tokens, `ppo_actor/n_tokens`, over its RL
wall time). docs/pipeline.md ("Stage
timing") says what each bucket holds per stage.

Exits 1 with a message naming the file (and line) when stats.jsonl is
missing or a line is malformed, or when no log holds a timing line.
"""
import glob
import json
import os
import sys

MARK = "stage_timing "
# The trainer's phases (trainer/trainer_run.cc) by bucket.
TRAINER_PHASES = {
    "wait_input_s": ["timeperf/rollout"],
    "transport_s": ["timeperf/update_weights", "timeperf/checkpoint_for_recover"],
    "compute_s": ["timeperf/train_step", "timeperf/eval"],
}


def fail(message):
    raise SystemExit(f"stage_timing: {message}")


def last_timing(path):
    """The JSON object of the last timing line of one log, or None."""
    found = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            at = line.find(MARK + "{")
            if at < 0:
                continue
            try:
                found = json.loads(line[at + len(MARK):])
            except json.JSONDecodeError as e:
                fail(f"{path}:{number}: a stage_timing line that is not JSON ({e.msg} at column {e.colno})")
            if not isinstance(found, dict) or "wall_s" not in found:
                fail(f"{path}:{number}: a stage_timing line without wall_s")
    return found


def load_stats(path):
    if not os.path.exists(path):
        fail(f"{path} does not exist: the trainer wrote no step")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{path}:{number}: not a JSON object ({e.msg} at column {e.colno})")
            if not isinstance(row, dict):
                fail(f"{path}:{number}: expected a JSON object")
            rows.append(row)
    if not rows:
        fail(f"{path} is empty: the trainer wrote no step")
    return rows


def trainer_timing(rows):
    """The trainer's buckets from its per-step timeperf/* and wall_time."""
    phases = [k for keys in TRAINER_PHASES.values() for k in keys]
    t = {k: sum(r.get(p, 0) or 0 for r in rows for p in keys) for k, keys in TRAINER_PHASES.items()}
    t["wait_output_s"] = 0.0
    # From the moment it began waiting for its first batch to its last step.
    first, last = rows[0].get("wall_time"), rows[-1].get("wall_time")
    if isinstance(first, (int, float)) and isinstance(last, (int, float)):
        t["wall_s"] = last - (first - sum(rows[0].get(p, 0) or 0 for p in phases))
    else:
        t["wall_s"] = sum(t.values())
    # ppo_actor/n_tokens (prompt + completion); a step without it: tokens/s x seconds.
    tokens = sum(r["ppo_actor/n_tokens"] if isinstance(r.get("ppo_actor/n_tokens"), (int, float))
                 else (r.get("timeperf/tokens_per_second") or 0) * (r.get("timeperf/train_step") or 0)
                 for r in rows)
    t["counts"] = {"trained_tokens": round(tokens), "steps": len(rows)}
    return t


def stage_order(name):
    order = {"feeder": 0, "bridge": 1, "server": 2, "scorer": 3, "trainer": 4}
    base, _, index = name.partition(".")
    return (order.get(base, 5), int(index) if index.isdigit() else 0, name)


def table(stages):
    """Markdown lines: one row per stage, shares of its own wall time."""
    out = ["| stage | wall s | waiting for input | waiting on output | transport | outside compute "
           "(waiting + transport) | timed compute | untimed rest |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in sorted(stages, key=stage_order):
        t = stages[name]
        wall = t["wall_s"]
        share = (lambda s: f"{100 * s / wall:.1f}%") if wall > 0 else (lambda s: "-")
        wi, wo, tr, co = (t.get(k, 0.0) for k in ("wait_input_s", "wait_output_s", "transport_s", "compute_s"))
        rest = wall - wi - wo - tr - co
        out.append(f"| {name} | {wall:.1f} | {share(wi)} | {share(wo)} | {share(tr)} | "
                   f"{share(wi + wo + tr)} | {share(co)} | {share(rest)} |")
    return out


def summary(stages):
    lines = []
    bridge, trainer = stages.get("bridge"), stages.get("trainer")
    if bridge and bridge["wall_s"] > 0:
        pushed = bridge.get("counts", {}).get("completion_tokens_pushed", 0)
        lines.append(f"generated tokens/s: {pushed / bridge['wall_s']:.1f} "
                     f"({pushed} completion tokens pushed by the bridge in {bridge['wall_s']:.1f} s)")
    servers = [t for n, t in stages.items() if n.startswith("server")]
    if servers:
        generated = sum(t.get("counts", {}).get("generated_tokens", 0) for t in servers)
        lines.append(f"tokens generated by the servers: {generated}")
    if trainer and trainer["wall_s"] > 0:
        trained = trainer["counts"]["trained_tokens"]
        lines.append(f"trained tokens/s: {trained / trainer['wall_s']:.1f} "
                     f"({trained} tokens in {trainer['counts']['steps']} steps, {trainer['wall_s']:.1f} s of RL)")
        transport = sum(t.get("transport_s", 0.0) for t in stages.values())
        lines.append(f"transport, all stages together: {transport:.1f} s = "
                     f"{100 * transport / trainer['wall_s']:.1f}% of the trainer's RL wall time")
    return lines


def collect(run_dir):
    stages = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "logs", "*.log"))):
        name = os.path.basename(path)[:-len(".log")]
        if name in ("trainer", "sft"):
            continue
        found = last_timing(path)
        if found is not None:
            stages[name] = found
    if not stages:
        fail(f"no stage_timing line in {os.path.join(run_dir, 'logs')}/*.log")
    stages["trainer"] = trainer_timing(load_stats(os.path.join(run_dir, "stats.jsonl")))
    return stages


def lines_for(run_dir):
    stages = collect(run_dir)
    return table(stages) + [""] + summary(stages)


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print("\n".join(lines_for(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
