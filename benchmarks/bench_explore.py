"""``make bench-explore``: the model time of one update of the explorer's page (lab-cnn explore), for the lab
net and the Keras port, against the goals (<= 100 ms and <= 300 ms on the CPU).

One update is what the page computes after a stroke: every layer's output, the probabilities and the
Integrated Gradients saliency (lab_cnn.explore.analysis.explain); drawing it as HTML is timed apart. The
nets are built as the configs build them, in eval mode; their weights do not change the time. The
median of 50 updates on test digits, after 5 to warm up, with the threads torch takes by default.

    python -m benchmarks.bench_explore [--data-dir data]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmarks.bench import versions
from lab_cnn.explore.analysis import ExploredNet, explain, explained_html
from lab_cnn.mnist import load_split

HERE = Path(__file__).resolve().parent
GOALS_MS = {"lab net (configs/baseline.yaml)": 100.0, "Keras port (configs/keras_relu.yaml)": 300.0}
WARM_UP, TIMED = 5, 50


def nets() -> list[ExploredNet]:
    from keras_parity import KerasNet
    from lab_cnn.module import LabNet

    return [
        ExploredNet("lab net (configs/baseline.yaml)", LabNet().eval(), "standard"),
        ExploredNet("Keras port (configs/keras_relu.yaml)", KerasNet().eval(), "unit"),
    ]


def median_ms(step, digits: list) -> float:
    for pixels in digits[:WARM_UP]:
        step(pixels)
    times = []
    for pixels in digits[WARM_UP : WARM_UP + TIMED]:
        started = time.perf_counter()
        step(pixels)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(prog="make bench-explore", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw (default data)")
    p.add_argument("--results-md", default=str(HERE / "RESULTS.md"), help="Markdown file the table is appended to")
    args = p.parse_args()
    images, _ = load_split(args.data_dir, train=False)
    digits = [images[i, 0].numpy() for i in range(WARM_UP + TIMED)]
    rows = [
        "| net | model time per update, ms | goal | met | drawing the panel, ms |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    results = {}
    for net in nets():
        model_ms = median_ms(lambda pixels, net=net: explain(net, pixels), digits)
        draw_ms = median_ms(lambda pixels, net=net: explained_html(net, explain(net, pixels)), digits) - model_ms
        goal = GOALS_MS[net.label]
        results[net.label] = {"model_ms": round(model_ms, 1), "draw_ms": round(draw_ms, 1), "goal_ms": goal}
        rows.append(
            f"| {net.label} | {model_ms:.1f} | {goal:.0f} | {'yes' if model_ms <= goal else 'NO'} | {draw_ms:.1f} |"
        )
    command = " ".join(["python -m benchmarks.bench_explore", *sys.argv[1:]])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = "\n".join(rows)
    print(table)
    machine = f"{versions()}; torch threads {torch.get_num_threads()}"
    (HERE / "results-explore.json").write_text(
        json.dumps({"when": when, "machine": machine, "command": command, "results": results}, indent=2) + "\n"
    )
    with open(args.results_md, "a") as f:
        f.write(
            f"\n## {when}: the explorer's update (lab-cnn explore)\n\n"
            f"Machine: {machine}.  \nCommand: `{command}`.\n\n{table}\n"
        )
    print(f"\nWritten: {HERE / 'results-explore.json'}, appended to {args.results_md}")


if __name__ == "__main__":
    main()
