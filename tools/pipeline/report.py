#!/usr/bin/env python3
"""Writes <run>/report/: one Markdown page with plots of a run's statistics.

    python3 tools/pipeline/report.py RUN_DIR [--plan FILE]

Reads RUN_DIR/stats.jsonl (one JSON object per training step, AReaL's stat
names) and RUN_DIR/config.yaml, draws one PNG per quantity with matplotlib
(reward, eval accuracy, loss, entropy, staleness, tokens/s against the step)
and writes RUN_DIR/report/index.md with the final figures, the plots, the
configuration and the planner's output (--plan: a file holding it).
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
            ax.plot(xs, ys, marker="." if len(xs) < 60 else None, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, name))
        plt.close(fig)
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
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
