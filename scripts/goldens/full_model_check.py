#!/usr/bin/env python3
"""Compares doze's backends with Hugging Face transformers on one checkpoint, teacher-forced.

Random prompts of --len tokens go through `doze logits` (every position's logits) on each backend named, and through
transformers in fp32 (the reference, TF32 off) and in bf16 on the GPU. Reported per backend: top-1 agreement with the
fp32 reference over all positions, and the largest and mean absolute logit error. transformers' own bf16 figures are
the bar the CUDA backend must reach.

usage: full_model_check.py --model DIR --doze BIN [--backends cuda,cpu] [--prompts 4] [--len 512] --out FILE.json
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def hf_logits(model_dir, dtype, prompts):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="eager").cuda().eval()
    out = []
    with torch.no_grad():
        for ids in prompts:
            logits = model(input_ids=torch.tensor([ids], device="cuda")).logits[0].float().cpu().numpy()
            out.append(logits)
    del model
    torch.cuda.empty_cache()
    return out


def doze_logits(doze, model_dir, backend, prompts, workdir):
    path = os.path.join(workdir, "prompts.jsonl")
    with open(path, "w") as f:
        for ids in prompts:
            f.write(json.dumps({"prompt_ids": ids}) + "\n")
    prefix = os.path.join(workdir, backend)
    subprocess.run([doze, "logits", "--model", model_dir, "--backend", backend, "--input", path, "--out", prefix,
                    "--kv-cache-tokens", str(4 * max(len(p) for p in prompts))], check=True)
    vocab = None
    out = []
    for i, ids in enumerate(prompts):
        raw = np.fromfile(f"{prefix}.{i}.f32", dtype=np.float32)
        vocab = raw.size // len(ids)
        out.append(raw.reshape(len(ids), vocab))
    return out


def compare(candidate, reference):
    agree = total = 0
    max_err = 0.0
    sum_err = 0.0
    count = 0
    for c, r in zip(candidate, reference):
        agree += int((c.argmax(-1) == r.argmax(-1)).sum())
        total += r.shape[0]
        diff = np.abs(c.astype(np.float64) - r.astype(np.float64))
        max_err = max(max_err, float(diff.max()))
        sum_err += float(diff.sum())
        count += diff.size
    return {"top1_agreement": agree / total, "max_abs_logit_error": max_err, "mean_abs_logit_error": sum_err / count,
            "positions": total}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--doze", required=True)
    parser.add_argument("--backends", default="cuda")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--len", type=int, default=512)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rng = np.random.default_rng(2026)
    prompts = [rng.integers(0, 151643, size=args.len).tolist() for _ in range(args.prompts)]
    reference = hf_logits(args.model, torch.float32, prompts)
    report = {"model": args.model, "prompts": args.prompts, "prompt_len": args.len,
              "transformers_bf16": compare(hf_logits(args.model, torch.bfloat16, prompts), reference)}
    with tempfile.TemporaryDirectory() as workdir:
        for backend in args.backends.split(","):
            report[f"doze_{backend}"] = compare(doze_logits(args.doze, args.model, backend, prompts, workdir), reference)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"{'vs transformers fp32':24} {'top-1 agree':>12} {'max |err|':>10} {'mean |err|':>11}")
    for name, row in report.items():
        if isinstance(row, dict):
            print(f"{name:24} {row['top1_agreement']:12.4f} {row['max_abs_logit_error']:10.4f} "
                  f"{row['mean_abs_logit_error']:11.5f}")


if __name__ == "__main__":
    main()
