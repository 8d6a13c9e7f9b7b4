#!/usr/bin/env python3
"""Writes Hugging Face transformers goldens for doze's random test checkpoints.

For each checkpoint directory and each prompt of a prompts file, in fp32 on the CPU with eager attention:
the prompt's token ids (HF's tokenizer and chat template), the top-10 logits and the logsumexp of the last prompt
position, and the greedy continuation (a plain argmax loop, so no generation_config rule interferes), with the margin
between the best and second-best logit at each step.

usage: model_goldens.py --prompts tests/goldens/model/prompts.jsonl --out-dir tests/goldens/model NAME=DIR ...
"""
import argparse
import hashlib
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prompt_ids(tokenizer, prompt):
    if "prompt_ids" in prompt:
        return list(prompt["prompt_ids"])
    if "messages" in prompt:
        ids = tokenizer.apply_chat_template(prompt["messages"], add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)
    return tokenizer(prompt["prompt"], add_special_tokens=False)["input_ids"]


@torch.no_grad()
def run_prompt(model, ids, new_tokens):
    input_ids = torch.tensor([ids])
    out = model(input_ids=input_ids, use_cache=True)
    last = out.logits[0, -1].double()
    top = torch.topk(last, 10)
    record = {
        "prompt_ids": ids,
        "top_logits": {"ids": top.indices.tolist(), "logits": top.values.tolist(),
                       "logsumexp": torch.logsumexp(last, 0).item()},
        "greedy_ids": [], "margins": [],
    }
    past = out.past_key_values
    logits = last
    for _ in range(new_tokens):
        best2 = torch.topk(logits, 2)
        token = int(best2.indices[0])
        record["greedy_ids"].append(token)
        record["margins"].append(float(best2.values[0] - best2.values[1]))
        out = model(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1].double()
    return record


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("checkpoints", nargs="+", help="NAME=DIR")
    args = parser.parse_args()
    torch.manual_seed(0)
    with open(args.prompts) as f:
        prompts = [json.loads(line) for line in f if line.strip()]
    for spec in args.checkpoints:
        name, directory = spec.split("=", 1)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        records = []
        for prompt in prompts:
            record = run_prompt(model, prompt_ids(tokenizer, prompt), args.new_tokens)
            record["input"] = prompt
            records.append(record)
        golden = {
            "checkpoint": name,
            "safetensors_sha256": sha256_of(os.path.join(directory, "model.safetensors")),
            "reference": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, fp32, eager",
            "records": records,
        }
        with open(os.path.join(args.out_dir, f"{name}.json"), "w") as f:
            json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
        print(f"{name}: {len(records)} prompts, min margin "
              f"{min(min(r['margins']) for r in records):.2e}")


if __name__ == "__main__":
    main()
