#!/usr/bin/env python3
"""Trains the small byte-level BPE of the embedded CPU default model.

The tiny model cannot afford Qwen's 151k vocabulary, so it gets its own
byte-level BPE trained on GSM8K-format text with Qwen's exact pipeline (NFC,
Qwen's split pattern, ByteLevel, BPE) and Qwen's chat markers as added tokens,
written as a Hugging Face tokenizer.json that //common/tokenizer loads with
Tokenizer::FromTokenizerJson. Training uses Hugging Face `tokenizers`'
BpeTrainer (deterministic for a fixed corpus and settings).

    python3 tools/tokenizer/train_small_bpe.py --shared third_party \
        --vocab_size 4096 --out common/tokenizer/data/moerl-gsm8k-bpe.json

Ids: 0..vocab_size-6 are the BPE vocabulary (the 256 single bytes first,
then merges); the last five are the added tokens <|endoftext|>,
<|im_start|>, <|im_end|> (special) and <think>, </think> (not special, as in
Qwen3). EOS is <|im_end|>; generation stops on <|im_end|> and <|endoftext|>.
"""
import argparse
import json
import os
import re

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
                r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
NOT_SPECIAL = ["<think>", "</think>"]


def corpus(shared):
    """GSM8K train rows as the model sees them (chat prompt, then answer), cut
    at the markers: at encode time added tokens are split out before BPE, so
    BPE must never learn merges across or inside them."""
    marker = re.compile("|".join(re.escape(t) for t in SPECIAL + NOT_SPECIAL))
    with open(os.path.join(shared, "data/gsm8k/train.jsonl"), encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            text = ("<|im_start|>user\n" + row["question"] + "<|im_end|>\n<|im_start|>assistant\n"
                    "<think>\n\n</think>\n\n" + row["answer"] + "<|im_end|>\n<|endoftext|>")
            for segment in marker.split(text):
                if segment:
                    yield segment


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="third_party")
    ap.add_argument("--vocab_size", type=int, default=4096, help="total ids, added tokens included")
    ap.add_argument("--out", default="common/tokenizer/data/moerl-gsm8k-bpe.json")
    args = ap.parse_args()

    tok = Tokenizer(models.BPE(dropout=None, unk_token=None, continuing_subword_prefix="",
                               end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    n_added = len(SPECIAL) + len(NOT_SPECIAL)
    trainer = trainers.BpeTrainer(vocab_size=args.vocab_size - n_added, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    # The markers must never be learned as merges: split them out first.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in NOT_SPECIAL])
    tok.train_from_iterator(corpus(args.shared), trainer=trainer)
    # Training may renumber the added tokens; put them after the vocabulary.
    data = json.loads(tok.to_str())
    vocab = {t: i for t, i in data["model"]["vocab"].items() if t not in SPECIAL + NOT_SPECIAL}
    order = sorted(vocab, key=vocab.get)  # keep the trainer's order, close the gaps
    data["model"]["vocab"] = {t: i for i, t in enumerate(order)}
    base = len(order)
    data["added_tokens"] = [
        {"id": base + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": t in SPECIAL}
        for i, t in enumerate(SPECIAL + NOT_SPECIAL)]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    check = Tokenizer.from_file(args.out)
    sample = "<|im_start|>user\nNatalia sold 48 clips.<|im_end|>"
    print("wrote %s: %d ids (%d BPE + %d added), %d merges; %r -> %s" % (
        args.out, check.get_vocab_size(with_added_tokens=True), base, n_added, len(data["model"]["merges"]),
        sample, check.encode(sample).ids))


if __name__ == "__main__":
    main()
