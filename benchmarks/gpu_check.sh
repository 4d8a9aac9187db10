#!/usr/bin/env bash
# The GPU checks of the CUDA kernels in one go, for a machine with a GPU and no
# network (the tests marked `cuda`, then the benchmarks BENCHMARKS.md's GPU
# section reports). Every step runs even when an earlier one fails; each one's
# exit status is logged.
#
#   benchmarks/gpu_check.sh OUT_DIR
#
# OUT_DIR gets log.txt (everything printed) and results.tgz (the benchmarks'
# JSON files, `poolswap doctor`, pytest's summary).
# Optional environment:
#   ORT_INCLUDE_DIR   ONNX Runtime's C/C++ headers, to build the ORT library there
#                     (copy them from POOLSWAP_CACHE/ort-headers/usr/include here)
#   ORT_GPU_WHEEL     an onnxruntime-gpu wheel to install for the CUDA-provider checks
#   GPU_CHECK_QUICK=1 small benchmark shapes (to try the script on a CPU machine)
set -uo pipefail

out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$out/results"
log="$out/log.txt"
results="$out/results"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

step() {  # step NAME COMMAND...: run, log its output and exit status
  local name=$1
  shift
  echo "=== $name: $*" | tee -a "$log"
  local start=$SECONDS
  "$@" 2>&1 | tee -a "$log"
  local status=${PIPESTATUS[0]}
  echo "=== $name: exit $status after $((SECONDS - start)) s" | tee -a "$log"
}

# poolswap from this checkout (run from the repository's root), with no install.
site=$(mktemp -d)
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
poolswap=("$python" cli.py)
if [ -n "${ORT_GPU_WHEEL:-}" ]; then
  step install-onnxruntime-gpu "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" \
    "$ORT_GPU_WHEEL"
fi
saved_to() {  # saved_to FILE COMMAND...: run, keep a copy of its output in FILE, return its status
  local file=$1
  shift
  "$@" 2>&1 | tee "$file"
  return "${PIPESTATUS[0]}"
}

step build "${poolswap[@]}" build
step doctor saved_to "$results/doctor.txt" "${poolswap[@]}" doctor
step tests "$python" -m pytest -q -m cuda -p no:cacheprovider -rs --junitxml "$results/pytest_cuda.xml"
if command -v compute-sanitizer >/dev/null && [ "${GPU_CHECK_QUICK:-0}" != 1 ]; then
  # Out-of-bounds and misaligned device accesses of the kernels, on the layout and dtype tests.
  step memcheck timeout 240 compute-sanitizer --tool memcheck --error-exitcode 1 "$python" -m pytest -q -x \
    -p no:cacheprovider tests/ops/test_cuda.py -k "dtypes_and_layouts or deterministic"
fi

if [ "${GPU_CHECK_QUICK:-0}" = 1 ]; then
  stem=(--batch 2 --channels 8 --size 32 --kernel 3 --stride 2 --padding 1 --min-run-time 0.05)
  wide=(--batch 2 --channels 16 --size 16 --kernel 2 --stride 2 --padding 0 --min-run-time 0.05)
  models=(--batch 2 --size 64 --min-run-time 0.05)
  ort=(--models op --batches 1)
  device=${GPU_CHECK_DEVICE:-cpu}
else
  stem=(--batch 64 --channels 64 --size 112 --kernel 3 --stride 2 --padding 1)
  wide=(--batch 64 --channels 256 --size 56 --kernel 2 --stride 2 --padding 0)
  models=(--batch 64 --size 224)
  ort=()
  device=${GPU_CHECK_DEVICE:-cuda}
fi
for dtype in float32 bfloat16; do
  step "op-stem-$dtype" "${poolswap[@]}" bench op --device "$device" "${stem[@]}" --dtype "$dtype" \
    --json "$results/op_stem_$dtype.json"
  step "op-wide-$dtype" "${poolswap[@]}" bench op --device "$device" "${wide[@]}" --dtype "$dtype" \
    --json "$results/op_wide_$dtype.json"
done
step model "${poolswap[@]}" bench model --device "$device" --models torchvision:resnet50 torchvision:googlenet \
  "${models[@]}" --json "$results/model.json"
step ort "${poolswap[@]}" bench ort --providers "$([ "$device" = cpu ] && echo cpu || echo cuda)" \
  ${ort[@]+"${ort[@]}"} --json "$results/ort.json"

tar czf "$out/results.tgz" -C "$results" . && rm -r "$results"
echo "=== done: $log, $out/results.tgz" | tee -a "$log"
