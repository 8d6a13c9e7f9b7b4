#!/usr/bin/env python3
"""Writes Hugging Face goldens for doze's native ChatML rendering: apply_chat_template(tokenize=False) of a set of
conversations with the Qwen2.5 tokenizer_config.json that `doze make-model --tokenizer` writes.

usage: chat_template_goldens.py --model DIR --out tests/goldens/tokenizer/chat_template.jsonl
"""
import argparse
import json

from transformers import AutoTokenizer

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You answer in JSON."}, {"role": "user", "content": "Name three colours."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke."}],
    [{"role": "system", "content": ""}, {"role": "user", "content": ""}],
    [{"role": "user", "content": "多行\n文本\n\n  with  spaces  \n"}],
    [{"role": "system", "content": "Polish copy."}, {"role": "user", "content": "a"},
     {"role": "assistant", "content": "b"}],
    [{"role": "user", "content": "<|im_start|> inside text <|im_end|>"}],
    [{"role": "assistant", "content": "I start."}, {"role": "user", "content": "ok"}],
    [{"role": "user", "content": "emoji 👩‍👩‍👧 and tabs\t\there"}],
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    with open(args.out, "w", encoding="utf-8") as out:
        for messages in CONVERSATIONS:
            for add_generation_prompt in (True, False):
                text = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                                     tokenize=False)
                record = {"messages": messages, "add_generation_prompt": add_generation_prompt, "text": text}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
