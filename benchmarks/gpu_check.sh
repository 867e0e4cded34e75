#!/usr/bin/env bash
# Every GPU check of lab-cnn in one run (about 6 minutes on one H100/H200): the GPU tests, a sweep of
# steps_per_call and precision, a profile of `make train-gpu`'s process, and `make bench DEVICE=gpu
# EPOCHS=5` (which writes benchmarks/results-gpu.json and appends to benchmarks/RESULTS.md).
# Run in the repository root on a machine with one CUDA GPU where torch, Lightning, torchmetrics,
# jsonargparse and TensorBoard import:   benchmarks/gpu_check.sh [OUTDIR]   (default benchmarks/gpu-check)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/gpu-check}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
step() { echo; echo "== $(date -u +%T) $*"; }

step machine
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch, lightning; print('torch', torch.__version__, '| lightning', lightning.__version__)" || exit 1
step data
$py -m lab_cnn data --data-dir data || exit 1
step "CUDA start"
$py - <<'PY'
import time
t0 = time.perf_counter(); import torch; t1 = time.perf_counter()
torch.zeros(1, device="cuda"); torch.cuda.synchronize(); t2 = time.perf_counter()
x = torch.randn(128, 1, 28, 28, device="cuda"); w = torch.randn(10, 1, 5, 5, device="cuda")
torch.nn.functional.conv2d(x, w).sum().item(); t3 = time.perf_counter()
print(f"import torch {t1 - t0:.2f} s, CUDA context {t2 - t1:.2f} s, first cuDNN conv {t3 - t2:.2f} s")
PY
step "GPU tests"
timeout 300 $py -m pytest -q -m gpu -p no:cacheprovider tests/test_steps.py 2>&1 | tail -15
step "steps_per_call and precision"
timeout 200 $py -m benchmarks.steps_sweep --epochs 2 --data-dir data 2>&1 | grep "^|" | tee "$out/sweep.md"
step "profile of make train-gpu's command"
rm -rf lightning_logs/profile
timeout 120 $py -m cProfile -o "$out/fit-gpu.prof" -m lab_cnn fit --config configs/baseline.yaml \
    --config configs/trainer/gpu.yaml --data.data_dir data --name profile 2>&1 | grep -E "Test set|rror"
step "make bench DEVICE=gpu EPOCHS=5"
timeout 400 $py -m benchmarks.bench --device gpu --epochs 5 --data-dir data ${BENCH_ONLY:+--only $BENCH_ONLY}
cp benchmarks/results-gpu.json benchmarks/RESULTS.md "$out/" 2>/dev/null
step done
