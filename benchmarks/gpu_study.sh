#!/usr/bin/env bash
# The lab study at 5 seeds (configs/studies/lab.yaml: 55 runs) on one GPU machine, every run at once that the
# machine holds: WORKERS runs (default: one per core) sharing the GPU (--runs-per-gpu), THREADS CPU threads each.
# Writes benchmarks/results-gpu-study.json (when, wall_s, runs, workers, device, ...) and a RESULTS.md section;
# the report goes to OUTDIR (default /tmp/gpu-study), never over the committed reports/lab.
# Where TensorFlow does not import (a lent machine's image may lack it), the Keras comparisons cannot run:
# the study is then the lab study's PyTorch comparisons (the PyTorch net and the Keras net's port), and the
# JSON says so. Run in the repository root, with data/MNIST/raw carried:   benchmarks/gpu_study.sh [OUTDIR]
# Budget: 8 minutes (timeout 470 s for the study itself). LIMIT=N: 1 epoch of N batches, a check of the script.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/gpu-study}
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
workers=${WORKERS:-$(nproc)}
threads=${THREADS:-1}
seeds=${SEEDS:-5}
study=configs/studies/lab.yaml

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU here: a check of the script only"
$py -m lab_cnn data --data-dir data | tail -1 || exit 1
if ! $py -c "import tensorflow" 2>/dev/null; then
    # the lab study's comparisons that need no TensorFlow, in a study file of their own (same runs, same keys)
    study=$out.pytorch.yaml
    $py - "$study" <<'PY' || exit 1
import sys, yaml
lab = yaml.safe_load(open("configs/studies/lab.yaml"))
spec = {"name": "lab-pytorch", "epochs": lab.get("epochs", 5), "comparisons": {}}
for included in lab.get("include", []):
    part = yaml.safe_load(open(f"configs/studies/{included}"))
    for name, c in (part.get("comparisons") or {}).items():
        if all("config" in v for v in c["variants"].values()):
            spec["comparisons"][name] = c
for name, c in (lab.get("comparisons") or {}).items():
    if all("config" in v for v in c["variants"].values()):
        spec["comparisons"][name] = c
yaml.safe_dump(spec, open(sys.argv[1], "w"), sort_keys=False)
print("TensorFlow does not import here: the PyTorch comparisons only:", ", ".join(spec["comparisons"]))
PY
fi
rm -rf "$out"
started=$(date +%s.%N)
timeout 470 $py -m lab_cnn study "$study" --seeds "$seeds" --workers "$workers" --threads-per-run "$threads" \
    --runs-per-gpu "$workers" --out "$out" --data-dir data ${LIMIT:+--epochs 1 --limit-batches $LIMIT} 2>&1 | tail -40
status=${PIPESTATUS[0]}
wall=$(echo "$(date +%s.%N) - $started" | bc)
$py - "$out" "$wall" "$workers" "$threads" "$study" "$status" <<'PY'
import datetime, json, os, subprocess, sys
from pathlib import Path
out, wall, workers, threads, study, status = sys.argv[1:]
runs = json.loads((Path(out) / "runs.json").read_text()) if (Path(out) / "runs.json").is_file() else {}
try:
    device = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
except FileNotFoundError:
    device = "cpu"
accs = sorted(round(r["test_acc"], 2) for r in runs.values())
result = {
    "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "wall_s": round(float(wall), 1), "runs": len(runs), "workers": int(workers), "threads_per_run": int(threads),
    "device": device, "study": study, "exit": int(status), "test_acc_range": [accs[0], accs[-1]] if accs else None,
}
Path(out).mkdir(parents=True, exist_ok=True)
if os.environ.get("LIMIT"):  # a check of the script: its result stays beside the report
    Path(out, "results-gpu-study.json").write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(print(json.dumps(result, indent=2)))
Path("benchmarks/results-gpu-study.json").write_text(json.dumps(result, indent=2) + "\n")
with open("benchmarks/RESULTS.md", "a") as f:
    f.write(f"\n## {result['when']}: the lab study on one GPU machine\n\nMachine: {device}, {workers} workers of "
            f"{threads} thread(s) sharing it.  \nCommand: `benchmarks/gpu_study.sh` ({study}, --seeds 5).\n\n"
            f"{len(runs)} runs in {result['wall_s']} s wall (exit {status}); test accuracies "
            f"{result['test_acc_range']}.\n")
print(json.dumps(result, indent=2))
PY
