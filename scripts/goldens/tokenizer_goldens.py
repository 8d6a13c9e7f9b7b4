#!/usr/bin/env python3
"""Writes Hugging Face `tokenizers` goldens for doze's tokenizer test.

For each string of the corpus (one JSON string per line): the ids of
`Tokenizer.from_file(path).encode(s, add_special_tokens=False)`, and the text of `decode(ids, skip_special_tokens=False)`
and of `decode(ids, skip_special_tokens=True)`. It also checks that add_special_tokens=True gives the same ids, since
Qwen2's post-processor adds nothing; the C++ tokenizer has no such switch.

usage: tokenizer_goldens.py --tokenizer PATH/tokenizer.json --corpus tests/goldens/tokenizer/corpus.jsonl \
           --out tests/goldens/tokenizer/goldens.jsonl
"""
import argparse
import json
import sys

import tokenizers
from tokenizers import Tokenizer


def read_corpus(path):
    # Split on "\n" only: str.splitlines() would also break on U+2028, U+0085 and friends.
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    return [json.loads(line) for line in lines if line]


def json_line(record):
    line = json.dumps(record, ensure_ascii=False)
    for ch in ("\u0085", "\u2028", "\u2029"):
        line = line.replace(ch, "\\u%04x" % ord(ch))
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True, help="path of tokenizer.json (or the folder holding it)")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    path = args.tokenizer
    if not path.endswith(".json"):
        path = path.rstrip("/") + "/tokenizer.json"
    tokenizer = Tokenizer.from_file(path)
    texts = read_corpus(args.corpus)
    with open(args.out, "w", encoding="utf-8", newline="\n") as out:
        for text in texts:
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            with_special = tokenizer.encode(text, add_special_tokens=True).ids
            if with_special != ids:
                sys.exit(f"add_special_tokens changes the ids of {text!r}: {ids} vs {with_special}")
            record = {
                "text": text,
                "ids": ids,
                "decoded": tokenizer.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tokenizer.decode(ids, skip_special_tokens=True),
            }
            out.write(json_line(record) + "\n")
    print(f"tokenizers {tokenizers.__version__}: wrote {len(texts)} goldens to {args.out}")


if __name__ == "__main__":
    main()
