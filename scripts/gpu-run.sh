#!/usr/bin/env bash
# Everything the GPU machine checks for the device layer, in one call (see docs/gpu-machine.md):
#   source .device/setup.sh && PARALLM_COMMIT=<commit> scripts/gpu-run.sh [lab] [7b] [throughput] [serving]
# Writes logs and results under $OUT (or ./gpu-out). `lab` also runs bench/lab.ts; `7b` writes a
# LLaMA-2-7B-shaped checkpoint with transformers and compares parallm's logits with HF's;
# `throughput` runs the HF peers and then parallm on the fixed-256 workload (NUM_PROMPTS, default
# 200) into one table; `serving` runs the serving benchmark on each of SERVING_BACKENDS (default
# webgpu native) against a 7B-shaped model with random weights (`serve --load-format dummy`;
# RATES, SERVING_PROMPTS) and draws their curves in one figure.
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
node bin/parallm.js info 2>&1 | grep -v '^Warning' > "$out/info.txt"
# the parity suite covers native too when its addon was carried (scripts/gpu-native.sh is the fuller run)
[[ -f native/build/parallm_native.node ]] || export PARALLM_TEST_BACKENDS=${PARALLM_TEST_BACKENDS:-webgpu}
timeout 150 npm run -s test:gpu 2>&1 | tee "$out/test-gpu.log" | grep -E '×|Tests|FAIL|Error' | tail -40
PYTHONUNBUFFERED=1 timeout 60 python3 scripts/torch_ceilings.py --out "$out/torch-ceilings.json" > "$out/torch.log" 2>&1 || tail -5 "$out/torch.log"
timeout 150 npx tsx bench/ops.ts --out "$out" --peer "$out/torch-ceilings.json" 2>&1 | grep -v '^Warning' | tee "$out/bench.log" | tail -48
if [[ " $* " == *" lab "* ]]; then timeout 300 npx tsx bench/lab.ts 2>&1 | grep -v '^Warning' > "$out/lab.log"; tail -8 "$out/lab.log"; fi
if [[ " $* " == *" 7b "* ]]; then
  PYTHONUNBUFFERED=1 timeout 200 python3 scripts/make_7b_reference.py /tmp/llama7b 2>&1 | grep -v Warning | tail -3
  python3 scripts/write_wordpiece_tokenizer.py /tmp/llama7b 32000   # so that `serve --model /tmp/llama7b` works too
  timeout 150 npx tsx bench/compare-7b.ts /tmp/llama7b --out "$out" 2>&1 | grep -v '^Warning' | tee "$out/compare-7b.log" | tail -8
fi
if [[ " $* " == *" throughput "* ]]; then
  n=${NUM_PROMPTS:-200}
  PYTHONUNBUFFERED=1 timeout 240 python3 scripts/peers_throughput.py --out "$out/peers.json" --num-prompts "$n" 2>&1 | grep -v Warn | tail -3
  timeout 240 node bin/parallm.js bench throughput --dummy llama-2-7b --backend webgpu --num-prompts "$n" --ceilings "$out/torch-ceilings.json" --peers "$out/peers.json" --out "$out" 2>&1 | grep -E 'TokensPerS"|ofRoofline|vsHf|gpuIdle|kvWaste'
fi
if [[ " $* " == *" serving "* ]]; then
  # the 7B shape without a checkpoint: config.json + tokenizer, random weights (--load-format dummy)
  python3 scripts/write_dummy_model.py /tmp/llama-2-7b-dummy llama-2-7b
  for b in ${SERVING_BACKENDS:-webgpu native}; do
    timeout 330 node bin/parallm.js bench serving --spawn-model /tmp/llama-2-7b-dummy --spawn-backend "$b" --spawn-args "--load-format dummy" \
      --label "parallm $b" --num-prompts "${SERVING_PROMPTS:-100}" --request-rates "${RATES:-1,2,4,inf}" --out "$out/serving-$b" > "$out/serving-$b.log" 2>&1
    grep -E '"requestRate"|"requestThroughput"|"meanNormalizedLatency"' "$out/serving-$b.log"
  done
  inputs=$(ls "$out"/serving-*/serving-*.json 2>/dev/null | paste -sd, -)
  [[ -n "$inputs" ]] && node bin/parallm.js bench serving --plot-only --plot-inputs "$inputs" --plot "$out/serving.svg" > /dev/null 2>&1
fi
