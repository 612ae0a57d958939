#!/usr/bin/env bash
# H100 device-machine benchmark run (docs/benchmarks.md "Model"). Carry: .gl (Vulkan loader debs),
# .whl (wgpu 0.32 + deps, gguf), .dawn (node.xz, webgpu dawn.node.xz, a built dist/ without models).
# Usage: [KERN=1] [PROF=1] [FOLDS="0 1"] [Q8=1] [NATIVE=1] bash app/bench/h100.sh shape:TYPE ...
#   shape: smollm2-135m qwen2.5-0.5b llama-3.2-1b llama-3.1-8b gemma-3-270m; TYPE: Q4_0 Q4_1 Q8_0 Q4_K_M
set -u
source "$(dirname "$0")/device_setup.sh"
M=/tmp/models; mkdir -p $M
if [ -n "${KERN:-}" ]; then
  timeout 200 node app/bench/node/run.mjs kernels --layouts f16,q4_1,q4_k,q6_ka,q8_0a --shapes 4096x4096,14336x4096,4096x14336,128256x4096 --repeats 3 > $OUT/dawn_kernels.txt 2>&1; tail -22 $OUT/dawn_kernels.txt
fi
for spec in "$@"; do
  shape=${spec%:*}; type=${spec#*:}
  [ -f $M/$shape-$type.gguf ] || python3 -m app.bench gen-gguf --shape $shape --type $type $M/$shape-$type.gguf >/dev/null || exit 1
done
for spec in "$@"; do
  shape=${spec%:*}; type=${spec#*:}; f=$M/$shape-$type.gguf
  for fo in ${FOLDS:-1}; do
  echo "=== $shape $type dawn NORM_FOLD=$fo"
  LOCALLLM_NORM_FOLD=$fo timeout 150 node app/bench/node/run.mjs model --model $f --runs 3 --json $OUT/dawn-$shape-$type-fold$fo.json 2>&1 | tail -11 | grep -v "^model\|^prompt\|^wrote"
  [ -n "${PROF:-}" ] && LOCALLLM_NORM_FOLD=$fo timeout 120 node app/bench/node/run.mjs profile --model $f 2>&1 | tail -14 | grep -v "logits_pen\|^sample\|^embedding\|token_store"
  done
  [ -n "${Q8:-}" ] && echo "=== $shape $type dawn decode-q8" && timeout 150 node app/bench/node/run.mjs model --model $f --runs 3 --decode-q8 --json $OUT/dawn-$shape-$type-q8.json 2>&1 | tail -11 | grep -v "^model\|^prompt\|^wrote"
  [ -n "${NATIVE:-}" ] && echo "=== $shape $type native" && timeout 150 python3 -m app.bench model --model $f --runs 3 --json $OUT/native-$shape-$type.json 2>&1 | tail -11 | grep -v "^model\|^prompt\|^wrote"
done
