#!/bin/bash
# Runs on the GPU machine, from the repo root, over `doze` and `doze-worker` bundled into h100/app
# (scripts/device/build_app_bundle.sh): the whole model against Hugging Face transformers, greedy agreement with the
# goldens on the tiny checkpoints, `doze bench` on the full Qwen2.5-0.5B shape and `doze bench-cold`.
# Logs and JSON go to $OUT (the device tool's output folder) or ./model-check-out.
set -uo pipefail
bundle=${1:-h100/app}
out=${OUT:-model-check-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$bundle/lib:/usr/local/cuda/lib64 PYTHONUNBUFFERED=1
doze=$PWD/$bundle/bin/doze
tokenizer=.cache/tokenizer-qwen3-3.7.2/tokenizer.json
models=/tmp/doze-models
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
date -u +%FT%TZ

"$doze" make-model --preset qwen2.5-0.5b --seed 1 --out $models/qwen2.5-0.5b --force --tokenizer $tokenizer
scripts/make-test-models "$doze" $tokenizer $models || status=1

echo "== the whole model against transformers, teacher-forced (4 x 512 tokens)"
timeout 240 python3 scripts/goldens/full_model_check.py --model $models/qwen2.5-0.5b --doze "$doze" \
  --backends cuda --out "$out/full_model_check.json" 2>&1 | grep -v "Loading weights" || status=1

echo "== greedy on the tiny checkpoints, CUDA backend against the transformers fp32 goldens"
for golden in tests/goldens/model/*.json; do
  name=$(basename "$golden" .json)
  python3 -c "import json,sys; [print(json.dumps(r['input'])) for r in json.load(open(sys.argv[1]))['records']]" \
    "$golden" >/tmp/prompts-$name.jsonl
  "$doze" generate --model $models/$name --backend cuda --input /tmp/prompts-$name.jsonl --max-tokens 32 \
    --ignore-eos --top-logits 10 >"$out/greedy-$name.jsonl" 2>/dev/null || status=1
  python3 - "$golden" "$out/greedy-$name.jsonl" <<'PY'
import json, sys
golden = json.load(open(sys.argv[1]))["records"]
outputs = [json.loads(line) for line in open(sys.argv[2])]
same = sum(r["greedy_ids"] == o["ids"] for r, o in zip(golden, outputs))
first = sum(r["greedy_ids"][0] == o["ids"][0] for r, o in zip(golden, outputs))
err = max(abs(a - b) for r, o in zip(golden, outputs)
          for a, b in zip(r["top_logits"]["logits"], o["top_logits"]["logits"]))
print(f"{sys.argv[1].split('/')[-1]}: {same}/{len(golden)} prompts with all 32 greedy tokens equal, "
      f"{first}/{len(golden)} first tokens equal, max top-10 logit error {err:.4f}")
PY
done

echo "== doze bench, CUDA, full Qwen2.5-0.5B shape"
timeout 200 "$doze" bench --model $models/qwen2.5-0.5b --backend cuda --batch 1,4,8,16,32,64 --prompt-len 512 \
  --gen-len 256 --ttft-lens 512,2048 >"$out/bench.log" 2>&1 || status=1
grep -v '^I ' "$out/bench.log"

if [[ -x $bundle/bin/doze-worker ]]; then
  echo "== doze bench-cold, CUDA, full Qwen2.5-0.5B shape"
  timeout 200 "$doze" bench-cold --model $models/qwen2.5-0.5b --backend cuda \
    --runs 10 >"$out/bench_cold.log" 2>&1 || status=1
  grep -v '^I ' "$out/bench_cold.log" | tail -n 20
fi
exit $status
