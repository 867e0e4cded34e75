"""``make bench-study``: a short study made with ``--workers 1`` and with ``--workers 2``, and what a run
costs besides its training, in a worker forked from the warm server and as a process of its own.

Each study is the real command (``python -m lab_cnn study``) in a temporary folder of its own, the threads
per run its default (the cores shared out among the workers). The per-run overhead is a run's seconds in
its process less its training time (both from its record in runs.json); for a process of its own, the
commands ``lab-cnn study`` ran before it had workers (``study.commands``: ``python -m lab_cnn fit``, or
``python -m keras_parity`` to train and then to test), timed from outside. Printed, written as JSON and
appended to benchmarks/RESULTS.md with the machine's details.

    python -m benchmarks.bench_study [--epochs 1] [--seeds 2] [--limit-batches N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from benchmarks.bench import HERE, REPO, versions

GOAL, TARGET = 0.65, 0.55  # wall time of --workers 2 over --workers 1: what must be met, what is aimed at
VARIANTS = {
    "neurons": {
        "framework": "pytorch",
        "variants": {
            "fc50": {"config": str(REPO / "configs/baseline.yaml")},
            "fc25": {"config": str(REPO / "configs/baseline.yaml"), "args": ["--model.init_args.hidden_units=25"]},
        },
    },
    "conv": {"framework": "keras", "variants": {"one_conv": {"keras": {"activation": "relu", "conv_layers": 1}}}},
}


def study_command(args: argparse.Namespace, workers: int) -> list[str]:
    limit = ["--limit-batches", str(args.limit_batches)] if args.limit_batches else []
    return [
        *[sys.executable, "-m", "lab_cnn", "study", "bench.yaml", "--workers", str(workers)],
        *["--seeds", str(args.seeds), "--data-dir", args.data_dir, *limit],
    ]


def run_study(args: argparse.Namespace, workers: int) -> dict:
    """The study with ``workers``: its wall time, and each run's overhead by framework."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = {"name": "bench", "epochs": args.epochs, "comparisons": VARIANTS}
        Path(tmp, "bench.yaml").write_text(yaml.safe_dump(spec))
        argv = study_command(args, workers)
        print(f"== study, {workers} worker(s): {' '.join(argv[1:])}", flush=True)
        start = time.perf_counter()
        subprocess.run(argv, cwd=tmp, check=True)
        wall = time.perf_counter() - start
        runs = json.loads(next(Path(tmp, "reports").glob("*/runs.json")).read_text()).values()
    overhead: dict[str, list[float]] = {}
    for run in runs:
        framework = "keras" if run["run"].startswith("keras") else "pytorch"
        overhead.setdefault(framework, []).append(run["process_seconds"] - run["seconds"])
    return {
        "wall_s": wall,
        "runs": len(runs),
        "threads": sorted({run["threads"] for run in runs}),
        "overhead_s": {k: statistics.fmean(v) for k, v in overhead.items()},
    }


def process_overhead(args: argparse.Namespace) -> dict[str, float]:
    """Seconds besides training of one run of each framework as processes of their own."""
    from lab_cnn.studies.study import Settings, commands, load_study, read_run

    settings = Settings(args.epochs, args.limit_batches)
    overhead = {}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bench.yaml").write_text(yaml.safe_dump({"name": "bench", "comparisons": VARIANTS}))
        study = load_study(Path(tmp, "bench.yaml"))
        for comparison in study.comparisons:
            variant = comparison.variants[0]
            key = variant.key(settings, 1)
            start = time.perf_counter()
            for argv in commands(variant, key, 0, settings, 1, args.data_dir):
                print(f"== a process of its own: {' '.join(argv[1:])}", flush=True)
                subprocess.run(argv, cwd=tmp, check=True, capture_output=True)
            wall = time.perf_counter() - start
            overhead[comparison.framework] = wall - read_run(Path(tmp) / variant.run_root(key) / "version_0")["seconds"]
    return overhead


def table(one: dict, two: dict, alone: dict[str, float]) -> str:
    ratio = two["wall_s"] / one["wall_s"]
    met = "yes" if ratio <= GOAL else "NO"
    lines = [
        "| study | runs | threads per run | wall s | overhead per lab-cnn run s | overhead per Keras run s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in (("--workers 1", one), ("--workers 2", two)):
        o = r["overhead_s"]
        lines.append(
            f"| {name} | {r['runs']} | {', '.join(map(str, r['threads']))} | {r['wall_s']:.1f} "
            f"| {o.get('pytorch', float('nan')):.1f} | {o.get('keras', float('nan')):.1f} |"
        )
    lines.append(
        f"| a process per run (before workers) | 1 each | torch's default | | {alone.get('pytorch', float('nan')):.1f} "
        f"| {alone.get('keras', float('nan')):.1f} |"
    )
    lines += [
        "",
        "| goal | measured | wanted | met |",
        "| --- | ---: | --- | --- |",
        f"| wall time --workers 2 / --workers 1 | {ratio:.2f} | <= {GOAL} (aim {TARGET}) | {met} |",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(prog="make bench-study", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="training epochs per run (default 1)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per variant: 3 variants, 2 seeds: 6 runs (default 2)")
    p.add_argument("--limit-batches", type=int, default=None, help="N batches per stage only (a quick check)")
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw (default data)")
    p.add_argument("--json", default=str(HERE / "results-study.json"), help="JSON file to write")
    p.add_argument("--results-md", default=str(HERE / "RESULTS.md"), help="Markdown file the table is appended to")
    args = p.parse_args()
    args.data_dir = str(Path(args.data_dir).resolve())
    one, two = run_study(args, 1), run_study(args, 2)
    alone = process_overhead(args)
    report = table(one, two, alone)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python -m benchmarks.bench_study", *sys.argv[1:]])
    print(f"\n{report}")
    results = {"workers_1": one, "workers_2": two, "process_per_run_overhead_s": alone}
    Path(args.json).write_text(
        json.dumps({"when": when, "machine": versions(), "command": command, "results": results}, indent=2)
    )
    with open(args.results_md, "a") as f:
        f.write(f"\n## {when}: study workers\n\nMachine: {versions()}.  \nCommand: `{command}`.\n\n{report}\n")
    print(f"\nWritten: {args.json}, appended to {args.results_md}")


if __name__ == "__main__":
    main()
