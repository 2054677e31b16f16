#!/usr/bin/env python3
"""Builds the math-verify agreement corpus for reward/ (the GSM8K verifier).

For real GSM8K rows it writes completions in many realistic styles (boxed,
several boxes, no box, "The answer is", units, currency, commas, fractions,
percent, truncated, empty, adversarial), labels each one with math-verify
configured exactly as AReaL's gsm8k_reward_fn does (extraction targets
[Expr(try_extract_without_anchor=True), Latex()], precision 6, gold = the
whole GSM8K `answer` text), and writes one JSON object per line:

  {"id": 17, "style": "boxed_dollar", "gold": "18", "completion": "...", "label": 1}

`gold` is the text after the final "####" (what Prompt.gold_answer carries).
reward/reward_agreement_test.cc replays the fixture against the C++ verifier.

Rows whose whole `answer` text math-verify itself parses to something other
than the "####" value (about 30 of 8792: the solution contains the word
"answer" followed by an intermediate number, or "10%") are left out and counted in the summary:
there AReaL's gold is wrong, and the C++ verifier uses the "####" line as the
issue asks.

Run (about 15 s):
  python3 tools/gsm8k/build_reward_corpus.py \
      --data_dir third_party/data/gsm8k --out reward/testdata/reward_corpus.jsonl
"""

import argparse
import json
import logging
import random
import re
import sys

from math_verify import parse, verify
from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

CONFIG = [ExprExtractionConfig(try_extract_without_anchor=True), LatexExtractionConfig()]


def mv_parse(text):
    return parse(text, extraction_config=CONFIG, parsing_timeout=None)


def mv_label(gold_parsed, completion):
    """AReaL's reward: 0 if either parse is empty, else verify at precision 6."""
    try:
        pred = mv_parse(completion)
        if not gold_parsed or not pred:
            return 0
        return int(bool(verify(gold_parsed, pred, float_rounding=6, timeout_seconds=None)))
    except Exception:  # AReaL turns every exception into reward 0.
        return 0


def gold_agrees(gold_parsed, gold):
    """math-verify's parse of the whole solution is the #### number itself."""
    if not gold_parsed:
        return False
    try:
        return abs(float(gold_parsed[0]) - float(gold.replace(",", ""))) < 1e-9
    except (TypeError, ValueError):
        return False


def clean_solution(answer):
    """The worked solution without calculator annotations and the #### line."""
    body = answer.rsplit("####", 1)[0].rstrip()
    return re.sub(r"<<[^>]*>>", "", body)


def with_commas(gold):
    if re.fullmatch(r"-?\d+", gold) and abs(int(gold)) >= 1000:
        return f"{int(gold):,}"
    return gold


def wrong_value(rng, gold):
    try:
        value = float(gold.replace(",", ""))
    except ValueError:
        return "0"
    choices = [value + 1, value - 1, value * 2, value + 10, value / 2 if value else 3]
    w = rng.choice(choices)
    if w == value:
        w = value + 7
    return str(int(w)) if float(w).is_integer() else f"{w:.2f}"


UNITS = ["dollars", "apples", "hours", "minutes", "miles", "cookies", "people", "pages", "cm"]
# Unit words in and out of latex2sympy's list: math-verify drops "hours" after
# a boxed number but reads "dollars" as a product of symbols.
LISTED_UNITS = ["apples", "hours", "minutes", "miles", "cm", "kg", "days", "feet"]
UNLISTED_UNITS = ["dollars", "people", "cookies", "pages", "eggs", "books", "cups"]


def styles(rng, row, gold):
    """Yields (style, completion) pairs for one row."""
    work = clean_solution(row["answer"])
    lines = work.split("\n")
    wrong = wrong_value(rng, gold)
    unit = rng.choice(UNITS)
    g = gold
    integer = re.fullmatch(r"-?\d+", g) is not None
    out = [
        ("boxed", f"{work}\n\nThe answer is $\\boxed{{{g}}}$."),
        ("boxed_wrong", f"{work}\n\nSo the answer is $\\boxed{{{wrong}}}$."),
        ("boxed_bare", f"{work}\n\\boxed{{{g}}}"),
        ("boxed_display", f"{work}\n\\[\n\\boxed{{{g}}}\n\\]"),
        ("boxed_dollar", f"{work}\nShe makes \\boxed{{\\${g}}} in total."),
        ("boxed_text_unit", f"{work}\nFinal: $\\boxed{{{g} \\text{{ {unit}}}}}$"),
        ("boxed_text_only", f"{work}\n\\boxed{{\\text{{{g}}}}}"),
        ("answer_is", f"{work}\nThe answer is {g}."),
        ("answer_is_wrong", f"{work}\nThe answer is {wrong}."),
        ("final_answer_colon", f"{work}\nFinal answer: {g}"),
        ("final_answer_is", f"{work}\n\nThe final answer is {g}"),
        ("final_answer_hope", f"{work}\nFinal Answer: The final answer is ${g}$. I hope it is correct."),
        ("markdown_answer", f"{work}\n\n**Answer:** {g}"),
        ("hashes", f"{work}\n#### {g}"),
        ("hashes_wrong", f"{work}\n#### {wrong}"),
        ("last_number", f"{work}\nSo the total is {g}."),
        ("last_number_wrong", f"{work}\nSo the total is {wrong}."),
        ("units", f"{work}\nThe answer is {g} {unit}."),
        ("currency", f"{work}\nIn total it costs ${g}."),
        ("inline_latex", f"{work}\nTherefore the result is ${g}$."),
        ("paren_latex", f"{work}\nTherefore the result is \\({g}\\)."),
        ("eos_token", f"{work}\nThe answer is \\boxed{{{g}}}.<|im_end|>"),
        ("box_then_chatter", f"{work}\n\\boxed{{{g}}}\n\nLet me know if you have other questions!"),
        ("box_then_other_answer", f"{work}\n\\boxed{{{g}}}\nWait, maybe the answer is {wrong}? No, it is fine."),
        ("two_boxes_same", f"First \\boxed{{{g}}}.\n{work}\nSo again \\boxed{{{g}}}."),
        ("two_boxes_differ", f"{work}\nMaybe \\boxed{{{wrong}}}, or rather \\boxed{{{g}}}."),
        ("two_boxes_differ_last_wrong", f"{work}\nI get \\boxed{{{g}}}, no wait \\boxed{{{wrong}}}."),
        ("empty", ""),
        ("whitespace", "   \n  "),
        ("no_number", "I am not sure how to solve this problem."),
        ("empty_box", f"{work}\nThe answer is \\boxed{{}}."),
        ("unterminated_box", f"{work}\nThe answer is \\boxed{{{g}"),
        ("truncated", work[: max(1, int(len(work) * rng.uniform(0.2, 0.8)))]),
        ("truncated_whole_lines", "\n".join(lines[: max(1, len(lines) - 1)])),
        ("thinking", f"<think>\nLet me compute. {work}\n</think>\n\nThe answer is \\boxed{{{g}}}."),
        ("equation_answer", f"{work}\nThe answer is x = {g}."),
        ("qwen_final_answer", f"{work}\n\n**Final Answer**\n\\[\n\\boxed{{{g}}}\n\\]"),
        ("answer_bold", f"{work}\nThe answer is: **{g}**"),
        ("boxed_unit_outside", f"{work}\nShe ends up with $\\boxed{{{g}}}$ {unit}."),
        ("hedge_or", f"{work}\nThe answer is {g} or maybe {wrong}."),
        ("answer_then_wrong_box", f"{work}\nThe answer is {g}.\n\\boxed{{{wrong}}}"),
        ("number_in_words", f"{work}\nThe answer is eighteen."),
        ("negated", f"{work}\nThe answer is -{g}." if not g.startswith("-") else f"{work}\nThe answer is {g[1:]}."),
    ]
    if integer:
        n = int(g)
        out += [
            ("boxed_decimal", f"{work}\n\\boxed{{{n}.0}}"),
            ("answer_decimal", f"{work}\nThe answer is {n}.00."),
            ("boxed_frac", f"{work}\n\\boxed{{\\frac{{{2 * n}}}{{2}}}}"),
            ("boxed_dfrac", f"{work}\n\\boxed{{\\dfrac{{{3 * n}}}{{3}}}}"),
            ("boxed_slash", f"{work}\n\\boxed{{{2 * n}/2}}"),
            ("boxed_frac_wrong", f"{work}\n\\boxed{{\\frac{{{2 * n + 1}}}{{2}}}}"),
            ("answer_slash", f"{work}\nThe answer is {4 * n}/4."),
        ]
        if abs(n) >= 1000:
            c = with_commas(g)
            out += [
                ("boxed_commas", f"{work}\n\\boxed{{{c}}}"),
                ("answer_commas", f"{work}\nThe answer is {c}."),
                ("currency_commas", f"{work}\nShe earns ${c} per year."),
                ("boxed_dollar_commas", f"{work}\n\\boxed{{\\${c}}}"),
                ("latex_commas", f"{work}\n\\boxed{{{c.replace(',', '{,}')}}}"),
            ]
        if "percent" in row["question"].lower() or "%" in row["question"]:
            out += [
                ("percent", f"{work}\nThe answer is {g}%."),
                ("boxed_percent", f"{work}\n\\boxed{{{g}\\%}}"),
            ]
    else:
        out += [("nonint_boxed", f"{work}\n\\boxed{{{g}}}")]
    # Rare on purpose: a unit word in a box without \text{}. math-verify reads
    # "18 dollars" as a product of symbols (0); we strip unit words (1).
    if rng.random() < 0.1:
        out.append(("boxed_units_bare", f"{work}\n\\boxed{{{g} {unit}}}"))
    # Where math-verify is strict and reward.lenient_units=true is not. The
    # unit is picked from the text, not the generator, so that the rows above
    # stay as they were.
    listed = LISTED_UNITS[len(work) % len(LISTED_UNITS)]
    unlisted = UNLISTED_UNITS[len(work) % len(UNLISTED_UNITS)]
    out += [
        ("strict_units_listed", f"{work}\nSo \\boxed{{{g} {listed}}}."),
        ("strict_units_unlisted", f"{work}\nSo \\boxed{{{g} {unlisted}}}."),
        ("strict_mathrm_unit", f"{work}\n\\boxed{{{g}\\,\\mathrm{{{unlisted}}}}}"),
        ("strict_text_whole", f"{work}\n\\boxed{{\\text{{{g} {unlisted}}}}}"),
        ("strict_text_then_word", f"{work}\n\\boxed{{{g} \\text{{ {unlisted}}} each}}"),
        ("strict_trailing_period", f"{work}\nThe answer is \\boxed{{{g}.}}"),
        ("strict_euro", f"{work}\nShe pays \\boxed{{\u20ac{g}}}."),
    ]
    if integer:
        out.append(("strict_text_decimal", f"{work}\n\\boxed{{\\text{{{g}.0}}}}"))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rows", type=int, default=160, help="GSM8K rows to sample")
    parser.add_argument("--seed", type=int, default=20251128)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # math-verify warns once per call about timeouts.

    rows = []
    for split in ("test", "train"):
        with open(f"{args.data_dir}/{split}.jsonl") as f:
            rows += [json.loads(line) for line in f if line.strip()]
    rng = random.Random(args.seed)
    rng.shuffle(rows)

    written = skipped_gold = rows_used = 0
    styles_seen = {}
    with open(args.out, "w") as out:
        for row in rows:
            if rows_used >= args.rows:
                break
            gold = row["answer"].rsplit("####", 1)[1].strip()
            gold_parsed = mv_parse(row["answer"])
            if not gold_agrees(gold_parsed, gold):
                skipped_gold += 1
                continue
            rows_used += 1
            for style, completion in styles(rng, row, gold):
                label = mv_label(gold_parsed, completion)
                out.write(json.dumps({"id": written, "style": style, "gold": gold,
                                      "completion": completion, "label": label}) + "\n")
                styles_seen.setdefault(style, [0, 0])[label] += 1
                written += 1
    print(f"wrote {written} completions to {args.out}; skipped {skipped_gold} rows whose "
          f"math-verify gold differs from the #### value", file=sys.stderr)
    for style, (zero, one) in sorted(styles_seen.items()):
        print(f"  {style:28s} label0={zero:4d} label1={one:4d}", file=sys.stderr)


if __name__ == "__main__":
    main()
