#!/usr/bin/env bash
# Tensor-core prefill (app/kernels/matmul_sgmat.py) on the H100 device machine, through Dawn:
# probe, numeric oracle, matmul TFLOP/s old vs new, then model prefill with the path off / on.
# Carry .gl .whl .dawn as for app/bench/h100.sh (refresh .dawn/dist/py/localllm.zip first).
# Usage: bash app/bench/sgmat_h100.sh [check] [bench] [MODEL_SPEC ...]   e.g. llama-3.2-1b:Q4_0
set -u
source "$(dirname "$0")/device_setup.sh"
export LOCALLLM_DAWN="disable-dawn-features=timestamp_quantization;enable-dawn-features=allow_unsafe_apis"
M=/tmp/models; mkdir -p $M
for what in "$@"; do
  case $what in
  check) echo "=== sgmat-check"; timeout 240 node app/bench/node/run.mjs sgmat-check > $OUT/sgmat_check.txt 2>&1; grep -v "warning: use of deprecated\|^ *\^\|  let [xw]. = subgroupMatrixLoad\|^ *subgroupMatrixStore\|^$\|Compilation log\|warning(s) generated\|^warning:$" $OUT/sgmat_check.txt | tail -40 ;;
  bench) echo "=== prefill matmul TFLOP/s (LOCALLLM_SGMAT_KB=${LOCALLLM_SGMAT_KB:-2})"; timeout 300 node app/bench/node/run.mjs prefill --layouts q4_1,q8_0a --shapes 4096x4096,14336x4096,4096x14336 --repeats 5 2>&1 | grep -v "warning\|deprecated\|^ *\^\|subgroupMatrix\|^$\|Compilation log" | tee $OUT/sgmat_prefill.txt ;;
  *:*) shape=${what%:*}; type=${what#*:}; f=$M/$shape-$type.gguf
    [ -f $f ] || python3 -m app.bench gen-gguf --shape $shape --type $type $f >/dev/null || exit 1
    for s in 0 1; do
      echo "=== $shape $type dawn LOCALLLM_SGMAT=$s"
      LOCALLLM_SGMAT=$s timeout 200 node app/bench/node/run.mjs model --model $f --runs 3 --json $OUT/sgmat$s-$shape-$type.json 2>&1 | grep -v "warning\|deprecated\|^ *\^\|subgroupMatrix\|^$\|Compilation log" | tail -11 | grep -v "^model\|^prompt\|^wrote"
    done ;;
  esac
done
