#!/usr/bin/env python3
"""Scoring throughput: the C++ GSM8K verifier vs math-verify, same corpus, same run.

math-verify is called as AReaL's gsm8k_reward_fn calls it (parse gold and
prediction with [Expr(try_extract_without_anchor=True), Latex()], verify at
float_rounding=6), minus AReaL's thread-pool and timeout wrapper, which would
only make it slower. The C++ side is reward/reward_bench.

  bazel build -c opt //reward:reward_bench
  python3 tools/gsm8k/bench_reward.py --bench bazel-bin/reward/reward_bench \
      --corpus reward/testdata/reward_corpus.jsonl
"""

import argparse
import json
import logging
import re
import subprocess
import time

from math_verify import parse, verify
from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

CONFIG = [ExprExtractionConfig(try_extract_without_anchor=True), LatexExtractionConfig()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="path of the reward_bench binary")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--python_rows", type=int, default=2000, help="rows math-verify scores")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    with open(args.corpus) as f:
        rows = [json.loads(line) for line in f]
    sample = rows[: args.python_rows]
    start = time.perf_counter()
    for row in sample:
        gold = parse("#### " + row["gold"], extraction_config=CONFIG, parsing_timeout=None)
        pred = parse(row["completion"], extraction_config=CONFIG, parsing_timeout=None)
        if gold and pred:
            verify(gold, pred, float_rounding=6, timeout_seconds=None)
    mv_seconds = time.perf_counter() - start
    mv_rate = len(sample) / mv_seconds
    out = subprocess.run([args.bench, args.corpus], check=True, capture_output=True, text=True)
    cpp_rate = float(re.search(r"per_second=([0-9.]+)", out.stdout).group(1))
    print(f"math-verify: {len(sample)} completions in {mv_seconds:.2f} s = {mv_rate:.0f}/s")
    print(f"C++ verifier: {out.stdout.strip()}")
    print(f"ratio C++ / math-verify: {cpp_rate / mv_rate:.0f}x (goal >= 200x)")


if __name__ == "__main__":
    main()
