"""``make bench``: the lab's nets trained through lab-cnn and the alternatives, side by side.

Each case runs in its own process, one after another on the same machine; the table gives
training-loop and whole-process times, images per second, peak resident memory and test accuracy,
then the ratios the project's speed goals are stated in. It is printed, written as JSON and
appended to benchmarks/RESULTS.md with the machine's details.

    python -m benchmarks.bench [--epochs 1] [--device cpu|gpu]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@dataclass
class Case:
    key: str
    title: str
    argv: list[str]  # with {epochs}, {data_dir}, {result} filled in


def lab_cnn_fit(config: str, gpu: bool) -> list[str]:
    """The real CLI (``python -m lab_cnn`` is ``lab-cnn``), with a callback that times its training loop."""
    extra = ["--config", str(REPO / "configs/trainer/gpu.yaml")] if gpu else []
    return [
        sys.executable,
        "-m",
        "lab_cnn",
        "fit",
        "--config",
        str(REPO / config),
        *extra,
        "--name",
        "bench",
        "--trainer.max_epochs",
        "{epochs}",
        "--data.data_dir",
        "{data_dir}",
        "{limit_fit}",
        "--trainer.callbacks+=benchmarks.loop_timer.LoopTimer",
        "--trainer.callbacks.path",
        "{result}",
    ]


def cases(gpu: bool) -> list[Case]:
    device = ["--device", "cuda" if gpu else "cpu"]
    plain = [
        sys.executable,
        "-m",
        "benchmarks.plain",
        *device,
        "--epochs",
        "{epochs}",
        "--data-dir",
        "{data_dir}",
        "{limit_plain}",
        "--result",
        "{result}",
    ]
    return [
        Case("a", "(a) lab-cnn fit, lab net", lab_cnn_fit("configs/baseline.yaml", gpu)),
        Case("b", "(b) plain loop, in-memory tensors", [*plain, "--loader", "tensors"]),
        Case("c", "(c) plain loop, torchvision MNIST", [*plain, "--loader", "torchvision"]),
        Case("a_port", "(a) lab-cnn fit, Keras net port", lab_cnn_fit("configs/keras_relu.yaml", gpu)),
        Case(
            "d",
            "(d) Keras model.fit, Keras net",
            [
                sys.executable,
                "-m",
                "benchmarks.keras_fit",
                "--epochs",
                "{epochs}",
                "--data-dir",
                "{data_dir}",
                "--result",
                "{result}",
            ],
        ),
    ]


def run_case(case: Case, epochs: int, limit: int | None, data_dir: str, env: dict[str, str]) -> dict:
    """Runs one case as a child process in a temporary folder (its logs go with it): its own timings
    plus wall time and peak RSS (from wait4). ``limit`` trains on that many batches an epoch (quick checks)."""
    limits = {
        "limit_fit": f"--trainer.limit_train_batches={limit}" if limit else "",
        "limit_plain": f"--limit-batches={limit}" if limit else "",
    }
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        filled = [a.format(epochs=epochs, data_dir=data_dir, result=result, **limits) for a in case.argv]
        argv = [a for a in filled if a]
        print(f"== {case.title}: {' '.join(argv[1:])}", flush=True)
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=tmp, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        process_s = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0 or not result.exists():
            return {"title": case.title, "error": f"exit code {child.returncode}"}
        out = json.loads(result.read_text())
    out.update(
        title=case.title,
        process_s=process_s,
        peak_rss_mb=usage.ru_maxrss / 1024,
        images_per_s=out["images"] / out["loop_s"],
    )
    return out


def versions() -> str:
    """The machine and the versions that matter."""
    from lab_cnn.machine import describe_machine, package_versions

    return "; ".join([describe_machine(), *(f"{name} {version}" for name, version in package_versions().items())])


def goals(r: dict[str, dict], gpu: bool, epochs: int) -> list[tuple[str, float | None, str, Callable[[float], bool]]]:
    """(what, value, wanted, test) for each of the project's speed goals: ratios on the CPU, the
    5-epoch training loops on the GPU."""

    def ratio(x: str, kx: str, y: str, ky: str) -> float | None:
        return r[x][kx] / r[y][ky] if kx in r.get(x, {}) and ky in r.get(y, {}) else None

    if gpu:
        five = epochs == 5
        return [
            (
                "training loop (a), lab net, 5 epochs, s",
                r.get("a", {}).get("loop_s") if five else None,
                "< 3",
                lambda v: v < 3,
            ),
            (
                "training loop (a), Keras net port, 5 epochs, s",
                r.get("a_port", {}).get("loop_s") if five else None,
                "< 6",
                lambda v: v < 6,
            ),
            ("training loop (c) / (a)", ratio("c", "loop_s", "a", "loop_s"), ">= 2.2", lambda v: v >= 2.2),
        ]
    return [
        ("training loop (a) / (b)", ratio("a", "loop_s", "b", "loop_s"), "<= 1.05", lambda v: v <= 1.05),
        ("whole process (a) / (b)", ratio("a", "process_s", "b", "process_s"), "<= 1.25", lambda v: v <= 1.25),
        ("training loop (c) / (a)", ratio("c", "loop_s", "a", "loop_s"), ">= 2.2", lambda v: v >= 2.2),
        ("training loop (d) / (a) port", ratio("d", "loop_s", "a_port", "loop_s"), ">= 1.3", lambda v: v >= 1.3),
        ("peak RSS of (a), MB", r.get("a", {}).get("peak_rss_mb"), "< 2048", lambda v: v < 2048),
    ]


def table(results: dict[str, dict], epochs: int, gpu: bool) -> str:
    lines = [
        f"| case ({epochs} epoch{'s' * (epochs > 1)}) | training loop s | images/s | whole process s | peak RSS MB "
        "| test acc |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results.values():
        if "error" in r:
            lines.append(f"| {r['title']} | {r['error']} | | | | |")
        else:
            lines.append(
                f"| {r['title']} | {r['loop_s']:.2f} | {r['images_per_s']:,.0f} | {r['process_s']:.1f} "
                f"| {r['peak_rss_mb']:,.0f} | {100 * r['test_acc']:.2f}% |"
            )
    lines += ["", "| goal | measured | wanted | met |", "| --- | ---: | --- | --- |"]
    for what, value, wanted, ok in goals(results, gpu, epochs):
        shown = "n/a" if value is None else f"{value:.2f}" if value < 100 else f"{value:,.0f}"
        lines.append(f"| {what} | {shown} | {wanted} | {'n/a' if value is None else 'yes' if ok(value) else 'NO'} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="training epochs per case (default 1)")
    p.add_argument(
        "--device", choices=["cpu", "gpu"], default="cpu", help="where the PyTorch cases train (default cpu)"
    )
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw (default data)")
    p.add_argument("--only", default=None, help="comma-separated case keys to run (a,b,c,a_port,d); default all")
    p.add_argument(
        "--limit-batches",
        type=int,
        default=None,
        help="train lab-cnn and the plain loops on N batches an epoch (a quick check)",
    )
    p.add_argument("--json", default=None, help="JSON file to write (default benchmarks/results-DEVICE.json)")
    p.add_argument("--results-md", default=str(HERE / "RESULTS.md"), help="Markdown file the table is appended to")
    args = p.parse_args()
    gpu = args.device == "gpu"
    if gpu:
        import torch

        if not torch.cuda.is_available():
            sys.exit("make bench: --device gpu, but this machine has no CUDA GPU; run `make bench` for the CPU figures")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    selected = [c for c in cases(gpu) if args.only is None or c.key in args.only.split(",")]
    results: dict[str, dict] = {}
    for case in selected:
        if case.key == "d" and not importlib.util.find_spec("tensorflow"):
            results[case.key] = {"title": case.title, "error": "skipped: TensorFlow is not installed"}
            continue
        results[case.key] = run_case(case, args.epochs, args.limit_batches, str(Path(args.data_dir).resolve()), env)
    command = " ".join(["python -m benchmarks.bench", *sys.argv[1:]])
    report = table(results, args.epochs, gpu)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{report}")
    out = Path(args.json or HERE / f"results-{args.device}.json")
    out.write_text(
        json.dumps(
            {"when": when, "machine": versions(), "command": command, "epochs": args.epochs, "results": results},
            indent=2,
        )
    )
    with open(args.results_md, "a") as f:
        f.write(
            f"\n## {when}: {args.device.upper()}, {args.epochs} epoch(s)\n\n"
            f"Machine: {versions()}.  \nCommand: `{command}`.\n\n{report}\n"
        )
    print(f"\nWritten: {out}, appended to {args.results_md}")


if __name__ == "__main__":
    main()
