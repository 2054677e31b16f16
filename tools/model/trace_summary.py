#!/usr/bin/env python3
"""Self time per op name of a chrome trace (one thread's nested "X" events),
for comparing moerl's training step with transformers' op by op.

  ./bazel-bin/trainer/model/model_benchmark --threads=1 --profile=/tmp/moerl.json
  python3 tools/model/trace_summary.py /tmp/moerl.json [--top 40]

Works on both RecordProfile's legacy traces (C++) and torch.profiler's
export_chrome_trace (Python). Events on other threads (OpenMP workers) are
ignored: run the step with --threads=1 for a complete picture.
"""
import argparse
import collections
import json


def load_events(path):
    with open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    spans = []
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        if e.get("cat") not in (None, "cpu_op", "CPU Functions", "user_annotation", "python_function"):
            continue
        spans.append((float(e["ts"]), float(e["dur"]), e["name"], e.get("tid")))
    return spans


def self_times(spans):
    """Self time = duration minus the durations of direct children (per thread)."""
    by_tid = collections.defaultdict(list)
    for s in spans:
        by_tid[s[3]].append(s)
    total = collections.Counter()
    calls = collections.Counter()
    for tid_spans in by_tid.values():
        tid_spans.sort(key=lambda s: (s[0], -s[1]))
        stack = []  # [end, name, child_time]
        def close(entry):
            end, name, child, dur = entry
            total[name] += dur - child
            calls[name] += 1
        for ts, dur, name, _ in tid_spans:
            while stack and stack[-1][0] <= ts:
                close(stack.pop())
            if stack:
                stack[-1][2] += dur
            stack.append([ts + dur, name, 0.0, dur])
        while stack:
            close(stack.pop())
    return total, calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    total, calls = self_times(load_events(args.trace))
    grand = sum(total.values())
    print(f"{'self ms':>10} {'%':>6} {'calls':>6}  op")
    for name, us in total.most_common(args.top):
        print(f"{us / 1e3:10.1f} {100 * us / grand:6.1f} {calls[name]:6d}  {name[:90]}")
    print(f"{grand / 1e3:10.1f} total self time (ms)")


if __name__ == "__main__":
    main()
