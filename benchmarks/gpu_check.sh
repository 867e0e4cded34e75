#!/usr/bin/env bash
# Every GPU check of lab-cnn in one run (about 5 minutes on one H100/H200): the GPU tests, the start-up
# costs of the machine, a cold `make train-gpu` command, and `make bench DEVICE=gpu EPOCHS=5` (which
# writes benchmarks/results-gpu.json and appends to benchmarks/RESULTS.md). With SWEEP=1 it also times
# every steps per call and precision (benchmarks/steps_sweep.py, about 40 s more).
# Run in the repository root on a machine with one CUDA GPU where torch, Lightning, torchmetrics,
# jsonargparse and TensorBoard import:   benchmarks/gpu_check.sh [OUTDIR]   (default benchmarks/gpu-check)
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mkdir -p "${1:-benchmarks/gpu-check}" && cd "${1:-benchmarks/gpu-check}" && pwd)
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
step() { echo; echo "== $(date -u +%T) $*"; }
train_gpu=(-m lab_cnn fit --config configs/baseline.yaml --config configs/trainer/gpu.yaml --data.data_dir data)

step machine
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch, lightning; print('torch', torch.__version__, '| lightning', lightning.__version__)" || exit 1
$py -m lab_cnn data --data-dir data | tail -1 || exit 1

step "start-up costs: imports, CUDA, cached bytecode"
site=$($py -c "import lightning, os; print(os.path.dirname(os.path.dirname(lightning.__file__)))")
$py -c "import sys; print('writes bytecode:', not sys.dont_write_bytecode)"
ls "$site"/lightning/__pycache__ >/dev/null 2>&1 && echo "bytecode in $site: yes" || echo "bytecode in $site: none"
for i in 1 2; do /usr/bin/time -f "import lightning: %e s" $py -c "import lightning"; done
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

if [ -n "${SWEEP:-}" ]; then
    step "steps per call and precision"
    timeout 200 $py -m benchmarks.steps_sweep --epochs 2 --data-dir data 2>&1 | grep "^|" | tee "$out/sweep.md"
fi

step "make train-gpu's command, as the first lab-cnn process on this machine"
rm -rf lightning_logs/baseline
/usr/bin/time -f "whole process: %e s" $py "${train_gpu[@]}" --trainer.enable_progress_bar false 2>&1 | grep -E "Test set|whole process|rror"

if ! ls "$site"/lightning/__pycache__ >/dev/null 2>&1; then
    # This image ships its packages without bytecode and keeps none: every process compiles every module
    # it imports again. An installed venv keeps the bytecode; the bench measures that, cached here.
    export PYTHONPYCACHEPREFIX=$PWD/.pycache
    $py -c "import lab_cnn.lightning_cli, benchmarks.plain, benchmarks.loop_timer, torchvision.datasets" || exit 1
    echo "bytecode cached under $PYTHONPYCACHEPREFIX for the bench"
    for i in 1 2; do /usr/bin/time -f "import lightning, bytecode cached: %e s" $py -c "import lightning"; done
fi

step "make bench DEVICE=gpu EPOCHS=5"
timeout 400 $py -m benchmarks.bench --device gpu --epochs 5 --data-dir data ${BENCH_ONLY:+--only $BENCH_ONLY} 2>&1 |
    grep -E "^(==|\||Written)|rror"
cp benchmarks/results-gpu.json benchmarks/RESULTS.md "$out/" 2>/dev/null
step done
