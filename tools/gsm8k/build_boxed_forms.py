#!/usr/bin/env python3
"""Builds reward/testdata/boxed_forms.jsonl: many ways of writing a boxed
answer, labelled by math-verify as AReaL calls it.

reward_corpus.jsonl (build_reward_corpus.py) covers completion styles on real
GSM8K rows; this file covers what sits inside and around the box: unit words
on and off latex2sympy's list, \\text{}/\\mathrm{}/\\mbox{} in every position,
currency, trailing punctuation, percent of integers and decimals, negative
numbers, thousands commas, fractions, '~'. Each completion may carry a number
before the box, so that a box math-verify cannot parse falls back to it.

Same row format and labelling as build_reward_corpus.py (style "boxed_form").
Run (about 2 minutes):
  python3 tools/gsm8k/build_boxed_forms.py --out reward/testdata/boxed_forms.jsonl
"""

import argparse
import json
import logging
import random

from math_verify import parse, verify
from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

CONFIG = [ExprExtractionConfig(try_extract_without_anchor=True), LatexExtractionConfig()]
UNITS = ["apples", "dollars", "hours", "people", "cm", "kg", "miles", "cookies", "feet", "days",
         "minutes", "books", "m", "s", "pages", "eggs", "square feet", "per hour", "each", "total"]
GOLDS = ["18", "1,250", "2.5", "1250", "0.75", "-3", "100"]


def mv_parse(text):
    return parse(text, extraction_config=CONFIG, parsing_timeout=None)


def box_content(rng, gold):
    n = gold
    if rng.random() < 0.25 and "." not in gold:
        n = str(int(float(gold.replace(",", ""))) + 1)  # a wrong value now and then
    u = lambda: rng.choice(UNITS)  # noqa: E731
    forms = [
        lambda: n,
        lambda: f"{n} {u()}",
        lambda: f"{n}\\text{{ {u()}}}",
        lambda: f"{n} \\text{{{u()}}}",
        lambda: f"\\text{{{n}}}",
        lambda: f"\\text{{{n} {u()}}}",
        lambda: f"\\${n}",
        lambda: f"{n}.",
        lambda: f"{n}\\%",
        lambda: f"{n}\\,\\mathrm{{{u()}}}",
        lambda: f"{n} \\text{{ {u()}}} {u()}",
        lambda: f"x = {n}",
        lambda: f"{n}{u()}",
        lambda: f"\\textbf{{{n}}}",
        lambda: f"({n})",
        lambda: f"{n}\\ \\text{{{u()}}}",
        lambda: f"{n}~{u()}",
        lambda: f"{n} {u()} {u()}",
        lambda: f"{n}\\mbox{{ {u()}}}",
        lambda: f"\\frac{{{n}}}{{1}}",
    ]
    return rng.choice(forms)()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rng = random.Random(args.seed)
    with open(args.out, "w") as out:
        for i in range(args.rows):
            gold = rng.choice(GOLDS)
            gold_parsed = mv_parse(f"Work.\n#### {gold}")
            before = rng.choice(["", "So 2+2 = 4 and then 7.\n", f"Total {gold} so far.\n"])
            after = rng.choice(["", ".", " in total."])
            completion = f"{before}The answer is \\boxed{{{box_content(rng, gold)}}}{after}"
            try:
                pred = mv_parse(completion)
                label = int(bool(pred and gold_parsed and verify(
                    gold_parsed, pred, float_rounding=6, timeout_seconds=None)))
            except Exception:  # AReaL turns every exception into reward 0.
                label = 0
            out.write(json.dumps({"id": i, "style": "boxed_form", "gold": gold,
                                  "completion": completion, "label": label}) + "\n")


if __name__ == "__main__":
    main()
