#!/usr/bin/env python3
"""Writes the golden fixtures that //common/tokenizer tests compare against.

Hugging Face `tokenizers` (and `transformers` for the chat template) is the
oracle. Run from the repository root after changing the corpus or the
tokenizer files (takes ~1 minute, no network):

    python3 tools/tokenizer/make_golden_fixtures.py \
        --shared third_party --out common/tokenizer/testdata

Outputs (all plain text; ids as decimal numbers):
  qwen_cases.jsonl        {"text", "ids", "decoded"} for the hand-made and
                          random corpus, encoded by Qwen3's tokenizer.
  qwen_pieces.txt         per qwen_cases.jsonl line: the codepoint lengths of
                          the pieces of HF's Split pre-tokenizer alone.
  qwen_gsm8k.tsv          per GSM8K test row and field (question / answer):
                          row, field, text FNV-1a64, id count, ids FNV-1a64;
                          rows < --full_rows also carry the full id list.
  qwen_decode.jsonl       {"ids", "text"}: random id sequences decoded by HF
                          (split UTF-8, added tokens, invalid bytes).
  qwen_chat.jsonl         apply_chat_template renderings and their ids.
  unicode_classes.tsv     Qwen-regex class of every codepoint, as ranges,
                          probed through HF's pre-tokenizer (L/N/S/O).
  nfc.tsv                 HF's NFC of every codepoint and of its NFD form,
                          where that differs from the input.
  small_cases.jsonl       like qwen_cases.jsonl, for the trained small
                          tokenizer (common/tokenizer/data/moerl-gsm8k-bpe.json).

FNV-1a64 over the ids: offset 0xcbf29ce484222325, prime 0x100000001b3, fed
each id as 4 little-endian bytes; over text: fed its UTF-8 bytes.
"""
import argparse
import json
import os
import random
import struct
import unicodedata

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers

QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
                r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def ids_hash(ids) -> str:
    return "%016x" % fnv1a64(struct.pack("<%di" % len(ids), *ids))


def text_hash(text: str) -> str:
    return "%016x" % fnv1a64(text.encode("utf-8"))


def handmade_corpus():
    cases = [
        "", "Hello world", " Hello world", "You are a helpful assistant.",
        "<think>\n\n</think>\n\n",
        # CJK, emoji, combining marks
        "你好，世界！今天的天气很好。", "日本語のテキスト、カタカナとひらがな。", "한국어 텍스트입니다",
        "中文English混合123数字", "😀 👍🏽 👨‍👩‍👧‍👦 🇩🇪🇯🇵 ❤️ 🤷‍♀️", "emoji😀inside😀words",
        "e\u0301 cafe\u0301 n\u0303 A\u030a", "\u1100\u1161\u11a8 decomposed hangul",
        "a\u0308\u0301\u0323 stacked", "Vi\u1ec7t Nam ti\u1ebfng Vi\u00ea\u0323t", "नमस्ते दुनिया", "\u0301leading mark",
        "Ω Ω K Å", "ﬁ ﬂ ﬀ ligatures", "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
        # CRLF and whitespace runs
        "line one\r\nline two\r\n\r\nline four", "\r\r\n\n\r", "trailing spaces   ", "   leading spaces",
        "a" + " " * 50 + "b", " " * 1000, "\t\t\tindented\n\t\tcode", "mixed \t \n \r\n  \t end",
        "x\n\n\n\n\ny", "x \n \n y", "  \n", "\n  ", "a\u00a0b\u3000c\u2028d\u0085e\u200bf\ufeffg",
        "\x0b\x0c\x1c\x1d\x1e\x1f\x00\x01 controls",
        # digits
        "12345678901234567890", "3.14159 2,000,000 1e10 -42", "٠١٢٣٤٥٦٧٨٩ ۱۲۳", "²³¹ ½ ⅓ Ⅻ ⅻ", "x²+y²=z²",
        # contractions in mixed case
        "I'm you're he's she'll we've they'd it's", "I'M YOU'RE HE'S SHE'LL WE'VE THEY'D IT'S",
        "i'M yOu'Re He'S sHe'Ll wE'vE tHeY'd", "'s 't 're 've 'm 'll 'd", "''s '''re", "don't can't won't",
        "'ſ 'ſt x'ſ", "rock'n'roll", "'S'T'M'D'LL'RE'VE",
        # added tokens inside words
        "foo<|im_end|>bar", "<|im_start|>user\nhi<|im_end|>", "a<think>b</think>c", "<|endoftext|><|endoftext|>",
        "<<|im_start|>>", "<|im_sta", "<think", "</think>\n\nanswer", "x<tool_call>y</tool_call>z",
        "<|im_start|> <|im_end|>", " <|endoftext|> ", "<|fim_prefix|>def<|fim_suffix|>x<|fim_middle|>",
        # GSM8K-ish
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "$1,234.56 + 20% = ?", "He has 3/4 of it.",
        # code, urls, punctuation
        "def f(x):\n    return x**2  # square\n", "https://example.com/a?b=c&d=e#frag", "!!!???...,,,;;;",
        "(a+b)*[c-d]/{e}", "--- *** ___ ===", "»quoted« „german“ ‘single’ “double”",
        "العربية نص", "עברית טקסט", "ภาษาไทย", "Ελληνικά κείμενο", "Русский текст, ёЁ",
    ]
    return cases


def random_corpus(rng, count):
    tricky = [" ", "  ", "\n", "\r", "\r\n", "\t", "'", "s", "S", "t", "re", "LL", "1", "23", "a", "Zq", "!",
              "?.", "ſ", "\u00a0", "\u3000", "<", "|", ">", "<|im_end|>", "<think>", "é", "e\u0301", "\u0301",
              "中", "😀", "\u200b", "²", "Ⅻ", "\x0b", "\x85", "#", "$", "-"]
    out = []
    for _ in range(count):
        mode = rng.random()
        n = rng.randint(1, 30)
        if mode < 0.5:
            out.append("".join(rng.choice(tricky) for _ in range(n)))
        else:
            chars = []
            for _ in range(n):
                r = rng.random()
                if r < 0.4:
                    cp = rng.randint(0x20, 0x7E)
                elif r < 0.7:
                    cp = rng.randint(0x80, 0xFFFF)
                else:
                    cp = rng.randint(0x10000, 0x10FFFF)
                if 0xD800 <= cp <= 0xDFFF:
                    cp = 0x41
                chars.append(chr(cp))
            out.append("".join(chars))
    return out


def class_ranges():
    """Class of each codepoint under the Qwen regex, probed as " " + c + "a"."""
    split = pre_tokenizers.Split(Regex(QWEN_PATTERN), "isolated")
    expected = {
        "L": lambda c: [" " + c + "a"],
        "N": lambda c: [" ", c, "a"],
        "S": lambda c: [" ", c + "a"],
        "O": lambda c: [" " + c, "a"],
    }
    ranges = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or cp in (0x0A, 0x0D):
            continue
        c = chr(cp)
        pieces = [p for p, _ in split.pre_tokenize_str(" " + c + "a")]
        cls = next((k for k, f in expected.items() if f(c) == pieces), None)
        if cls is None:
            raise SystemExit("unexpected split of U+%04X: %r" % (cp, pieces))
        if ranges and ranges[-1][2] == cls and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, cls])
    return ranges


def nfc_rows():
    nfc = normalizers.NFC()
    rows = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        for source in {c, unicodedata.normalize("NFD", c)}:
            out = nfc.normalize_str(source)
            if out != source:
                rows.append((source, out))
    return rows


def hexs(s):
    return " ".join("%X" % ord(ch) for ch in s)


def write_cases(path, tok, texts):
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            ids = tok.encode(text).ids
            f.write(json.dumps({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)},
                               ensure_ascii=True) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="third_party")
    ap.add_argument("--out", default="common/tokenizer/testdata")
    ap.add_argument("--small", default="common/tokenizer/data/moerl-gsm8k-bpe.json")
    ap.add_argument("--full_rows", type=int, default=100)
    ap.add_argument("--skip_tables", action="store_true", help="skip unicode_classes.tsv and nfc.tsv")
    args = ap.parse_args()

    from transformers import AutoTokenizer  # slow import; only needed here
    hf = AutoTokenizer.from_pretrained(os.path.join(args.shared, "data/qwen-tokenizer"))
    tok = hf.backend_tokenizer
    assert tok.encode("Hello world").ids == [9707, 1879]
    os.makedirs(args.out, exist_ok=True)

    rng = random.Random(20261128)
    texts = handmade_corpus() + random_corpus(rng, 2000)
    write_cases(os.path.join(args.out, "qwen_cases.jsonl"), tok, texts)
    split = pre_tokenizers.Split(Regex(QWEN_PATTERN), "isolated")
    with open(os.path.join(args.out, "qwen_pieces.txt"), "w") as f:
        f.write("# per line of qwen_cases.jsonl: codepoint lengths of HF's Split pieces of the raw text\n")
        for text in texts:
            f.write(" ".join(str(len(p)) for p, _ in split.pre_tokenize_str(text)) + "\n")

    with open(os.path.join(args.shared, "data/gsm8k/test.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(args.out, "qwen_gsm8k.tsv"), "w", encoding="utf-8") as f:
        f.write("# row\tfield\ttext_fnv\tcount\tids_fnv\tids (rows < %d)\n" % args.full_rows)
        for i, row in enumerate(rows):
            for field in ("question", "answer"):
                ids = tok.encode(row[field]).ids
                full = " ".join(map(str, ids)) if i < args.full_rows else ""
                f.write("%d\t%s\t%s\t%d\t%s\t%s\n" % (i, field, text_hash(row[field]), len(ids), ids_hash(ids), full))

    added = sorted(hf.added_tokens_decoder.keys())
    with open(os.path.join(args.out, "qwen_decode.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(500):
            n = rng.randint(1, 12)
            ids = []
            for _ in range(n):
                r = rng.random()
                if r < 0.1 and added:
                    ids.append(rng.choice(added))
                elif r < 0.5:
                    ids.append(rng.randint(0, 255))  # often a lone UTF-8 lead/continuation byte
                else:
                    ids.append(rng.randint(0, 151642))
            f.write(json.dumps({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                                "text_skip_special": tok.decode(ids, skip_special_tokens=True)},
                               ensure_ascii=True) + "\n")

    with open(os.path.join(args.out, "qwen_chat.jsonl"), "w", encoding="utf-8") as f:
        for system in (None, "", "You are a helpful assistant."):
            for user in ("What is 2+2?", "Natalia sold clips to 48 of her friends.\nHow many?"):
                for thinking in (None, True, False):
                    for gen in (True, False):
                        msgs = ([{"role": "system", "content": system}] if system is not None else [])
                        msgs.append({"role": "user", "content": user})
                        kwargs = {} if thinking is None else {"enable_thinking": thinking}
                        text = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen, **kwargs)
                        f.write(json.dumps({"system": system, "user": user, "enable_thinking": thinking,
                                            "add_generation_prompt": gen, "text": text,
                                            "ids": tok.encode(text).ids}, ensure_ascii=True) + "\n")

    if os.path.exists(args.small):
        small = Tokenizer.from_file(args.small)
        small_texts = handmade_corpus() + random_corpus(random.Random(7), 500)
        small_texts += [r["question"] for r in rows[:200]] + [r["answer"] for r in rows[:200]]
        write_cases(os.path.join(args.out, "small_cases.jsonl"), small, small_texts)

    if not args.skip_tables:
        with open(os.path.join(args.out, "unicode_classes.tsv"), "w") as f:
            f.write("# first\tlast\tclass (L letter, N number, S whitespace, O other); CR, LF, surrogates omitted\n")
            for lo, hi, cls in class_ranges():
                f.write("%X\t%X\t%s\n" % (lo, hi, cls))
        with open(os.path.join(args.out, "nfc.tsv"), "w") as f:
            f.write("# input codepoints\tHF NFC output codepoints (hex)\n")
            for source, out in nfc_rows():
                f.write("%s\t%s\n" % (hexs(source), hexs(out)))


if __name__ == "__main__":
    main()
