#!/usr/bin/env python3
"""Writes <run>/report/: one Markdown page with plots of a run's statistics.

    python3 tools/pipeline/report.py RUN_DIR [--plan FILE] [--baseline STATS]

Reads RUN_DIR/stats.jsonl (one JSON object per training step, AReaL's stat
names) and RUN_DIR/config.yaml, draws one PNG per quantity with matplotlib
(reward, eval accuracy, loss, entropy, staleness, tokens/s against the step)
and writes RUN_DIR/report/index.md with the final figures, the plots, the
configuration and the planner's output (--plan: a file holding it).
The stages' timing (stage_timing.py) becomes one more table when their logs
hold it. --baseline names the stats.jsonl of the run RL started from (the pipeline's
SFT warm-up): its last evaluation is drawn as dashed lines on the eval plot
and compared with this run's evaluations in a table.
Exits 1 with a message naming the file and line of a malformed stats line.
"""
import argparse
import json
import os
import sys

# Each plot: title, file name, and the stat keys drawn on it (first found wins
# for the legend order; missing keys are skipped).
PLOTS = [
    ("Reward", "reward.png", ["rollout/reward", "ppo_actor/task_reward/avg"]),
    ("Eval accuracy", "eval.png", ["eval-rollout/reward", "eval-rollout/greedy_accuracy"]),
    ("Loss", "loss.png", ["ppo_actor/update/actor_loss/avg", "sft/loss"]),
    ("Entropy", "entropy.png", ["ppo_actor/update/entropy/avg"]),
    ("Staleness (versions)", "staleness.png",
     ["ppo_actor/update/version_stats/sample_staleness_theta_avg",
      "ppo_actor/update/version_stats/sample_staleness_theta_max"]),
    ("Tokens/s", "throughput.png", ["timeperf/tokens_per_second", "timeperf/generated_tokens_per_s"]),
]


EVAL_KEYS = ["eval-rollout/reward", "eval-rollout/greedy_accuracy"]


def eval_table(rows, baseline):
    """Markdown lines: each evaluation, with its change over the baseline."""
    evals = [r for r in rows if isinstance(r.get(EVAL_KEYS[0]), (int, float))]
    if not evals:
        return []
    # Minutes count from the moment the trainer began waiting for its first
    # batch: step 0's wall_time less the phases it timed.
    start = rows[0].get("wall_time")
    if start is not None:
        phases = ("rollout", "train_step", "update_weights", "checkpoint_for_recover", "eval")
        start -= sum(rows[0].get(f"timeperf/{p}", 0) for p in phases)
    head = "| after step | min of RL | sampled (`eval-rollout/reward`) | greedy (`eval-rollout/greedy_accuracy`) |"
    out = ["## Held-out accuracy", "", head, "| --- | --- | --- | --- |"]
    if baseline:
        out.append("| before RL | 0 | {:.1%} | {:.1%} |".format(*(baseline.get(k, float("nan")) for k in EVAL_KEYS)))

    def cell(r, k):
        v = r.get(k)
        if not isinstance(v, (int, float)):
            return "-"
        if k in baseline:
            return f"{v:.1%} ({100 * (v - baseline[k]):+.1f})"
        return f"{v:.1%}"

    for r in evals:
        minutes = "-" if start is None or r.get("wall_time") is None else f"{(r['wall_time'] - start) / 60:.1f}"
        out.append(f"| {r.get('step', '?')} | {minutes} | {cell(r, EVAL_KEYS[0])} | {cell(r, EVAL_KEYS[1])} |")
    return out + [""]


def timing_section(run_dir):
    """Markdown lines: stage_timing.py's table, when the stages logged their timing."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        import stage_timing
        found = stage_timing.lines_for(run_dir)
    except (ImportError, SystemExit) as e:  # e.g. a run from before the stages logged it
        print(f"report: no stage timing: {e}", file=sys.stderr)
        return []
    return ["## Where each stage's time went", "", *found, ""]


def load_stats(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"report: {path}:{number}: not a JSON object ({e.msg} at column {e.colno})")
            if not isinstance(row, dict):
                raise SystemExit(f"report: {path}:{number}: expected a JSON object")
            rows.append(row)
    return rows


def series(rows, key):
    xs, ys = [], []
    for i, row in enumerate(rows):
        value = row.get(key)
        if isinstance(value, (int, float)):
            xs.append(row.get("step", i))
            ys.append(value)
    return xs, ys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--plan", help="file holding the planner's output for this run")
    parser.add_argument("--baseline", help="stats.jsonl of the run this one started from (its last evaluation)")
    args = parser.parse_args()

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats_path = os.path.join(args.run_dir, "stats.jsonl")
    if not os.path.exists(stats_path):
        raise SystemExit(f"report: {stats_path} does not exist: the trainer wrote no step")
    rows = load_stats(stats_path)
    out = os.path.join(args.run_dir, "report")
    os.makedirs(out, exist_ok=True)

    lines = [f"# Run report: {args.run_dir}", "", f"{len(rows)} training steps.", ""]
    baseline = {}
    if args.baseline and os.path.exists(args.baseline):
        evals = [r for r in load_stats(args.baseline) if isinstance(r.get(EVAL_KEYS[0]), (int, float))]
        if evals:
            baseline = {k: evals[-1][k] for k in EVAL_KEYS if isinstance(evals[-1].get(k), (int, float))}
    lines += eval_table(rows, baseline)
    final = rows[-1] if rows else {}
    summary = [(k, final[k]) for _, _, keys in PLOTS for k in keys if isinstance(final.get(k), (int, float))]
    if summary:
        lines += ["| statistic (last step) | value |", "| --- | --- |"]
        lines += [f"| `{k}` | {v:.4g} |" for k, v in summary]
        lines.append("")
    for title, name, keys in PLOTS:
        drawn = [(k, *series(rows, k)) for k in keys]
        drawn = [d for d in drawn if d[1]]
        if not drawn:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        for key, xs, ys in drawn:
            line, = ax.plot(xs, ys, marker="." if len(xs) < 60 else None, label=key)
            if key in baseline:
                ax.axhline(baseline[key], color=line.get_color(), linestyle="--", linewidth=1,
                           label=f"{key} before RL")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, name))
        plt.close(fig)
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    lines += timing_section(args.run_dir)
    config = os.path.join(args.run_dir, "config.yaml")
    if os.path.exists(config):
        with open(config, encoding="utf-8") as f:
            lines += ["## Configuration", "", "```yaml", f.read().rstrip(), "```", ""]
    if args.plan and os.path.exists(args.plan):
        with open(args.plan, encoding="utf-8") as f:
            lines += ["## Plan", "", "```", f.read().rstrip(), "```", ""]
    with open(os.path.join(out, "index.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(os.path.join(out, "index.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
