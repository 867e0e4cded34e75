"""``lab-cnn report``: a study's tables and plots, read back from the runs' TensorBoard event files.

Every number comes from ``lightning_logs/``: per-epoch ``train/acc`` and ``train/loss``, the final
``test/acc`` and ``test/loss``, ``model/params``, and the training time from the event wall times
(first ``lr-SGD``, logged as each epoch starts, to the last ``train/acc``, logged as it ends).
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from lab_cnn.errors import UserError  # noqa: E402
from lab_cnn.inspection import tensorboard_without_tensorflow  # noqa: E402
from lab_cnn.study import DONE, Comparison, Variant, finished_runs  # noqa: E402

SPREAD_RULE = "the difference of the means exceeds the sum of the two standard deviations"


def machine() -> str:
    """CPU model, cores and memory of this machine, and its GPU when it has one."""
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("model name")), "unknown CPU")
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {memory_gb:.0f} GB{gpu}"


def read_run(run_dir: Path) -> dict[str, Any]:
    """The numbers a run logged, with TensorBoard's own reader; accuracies in percent."""
    tensorboard_without_tensorflow()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator, ScalarEvent
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars, tensors = set(events.Tags()["scalars"]), set(events.Tags()["tensors"])
    tags = scalars | tensors

    def series(tag: str) -> list[ScalarEvent]:
        """A tag's values by step: Lightning writes scalars, TensorFlow (Keras) scalar tensors."""
        if tag in scalars:
            found = events.Scalars(tag)
        else:
            found = [ScalarEvent(e.wall_time, e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in events.Tensors(tag)]
        return sorted(found, key=lambda e: e.step)

    missing = {"train/acc", "train/loss", "test/acc", "test/loss", "lr-SGD", "model/params"} - tags
    if missing:
        raise UserError(f"{run_dir}: no {', '.join(sorted(missing))} in its event files")
    return {
        "train_acc": [100 * e.value for e in series("train/acc")],
        "train_loss": [e.value for e in series("train/loss")],
        "test_acc": 100 * series("test/acc")[-1].value,
        "test_loss": series("test/loss")[-1].value,
        "params": int(series("model/params")[-1].value),
        "seconds": series("train/acc")[-1].wall_time - series("lr-SGD")[0].wall_time,
        "process_seconds": json.loads((run_dir / DONE).read_text())["seconds"],
        "run": str(run_dir),
    }


def lab_figures(variant: Variant, framework: str) -> dict[str, Any] | None:
    """The lab's numbers for a variant in the report's units (percent; the PyTorch lab counted correct images)."""
    lab = variant.lab_numbers()
    if lab is None:
        return None
    scale = 100 if framework == "keras" else 1
    test_acc = 100 * lab["test_acc"] if "test_acc" in lab else lab["test_correct"] / 100
    return {"train_acc": [scale * a for a in lab["train_acc"]], "train_loss": lab["train_loss"],
            "test_acc": test_acc, "test_loss": lab["test_loss"]}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def shown(values: list[float], digits: int = 2) -> str:
    """``mean`` or ``mean ± std``."""
    if not values:
        return "–"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" if len(values) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def per_epoch(runs: list[dict], key: str) -> list[list[float]]:
    """Each epoch's values across the runs (seeds)."""
    epochs = min((len(r[key]) for r in runs), default=0)
    return [[r[key][e] for r in runs] for e in range(epochs)]


def verdict(c: Comparison, results: dict[str, list[dict]]) -> tuple[str, str]:
    """What was measured for the lab's conclusion of comparison ``c``, and whether it holds."""
    means = {name: mean_std([r["test_acc"] for r in runs]) for name, runs in results.items() if runs}
    if c.expect_best not in means or len(means) < 2:
        return "not enough finished runs", "cannot tell"
    expected_mean, expected_std = means[c.expect_best]
    others = {n: m for n, m in means.items() if n != c.expect_best}
    measured = ", ".join(f"{n} {m:.2f}" for n, (m, _) in sorted(means.items(), key=lambda kv: -kv[1][0]))
    ahead = all(expected_mean > m for m, _ in others.values())
    seeds = min(len(runs) for runs in results.values() if runs)
    if seeds < 2:
        return measured, ("holds in this run" if ahead else "does not hold in this run") + " (one seed: no spread to judge; use --seeds N)"
    beyond = all(expected_mean - m > expected_std + s for m, s in others.values())
    if ahead and beyond:
        return measured, f"holds beyond the seed-to-seed spread ({seeds} seeds)"
    if ahead:
        return measured, f"same direction, but within the seed-to-seed spread ({seeds} seeds)"
    return measured, f"does not hold ({seeds} seeds)"


def plot(c: Comparison, results: dict[str, list[dict]], labs: dict[str, dict | None], path: Path) -> None:
    """Training accuracy and loss per epoch: one line per variant (band: ± one std), the lab's dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, v in enumerate(c.variants):
        color = f"C{i}"
        for ax, key in zip(axes, ("train_acc", "train_loss")):
            values = per_epoch(results[v.name], key)
            if values:
                epochs = range(1, len(values) + 1)
                stats = [mean_std(e) for e in values]
                mean = [m for m, _ in stats]
                ax.plot(epochs, mean, "o-", color=color, label=f"{v.name} (measured)")
                if len(values[0]) > 1:
                    ax.fill_between(epochs, [m - s for m, s in stats], [m + s for m, s in stats], color=color, alpha=0.2)
            if labs[v.name]:
                lab = labs[v.name][key]
                ax.plot(range(1, len(lab) + 1), lab, "s--", color=color, alpha=0.6, label=f"{v.name} (lab)")
    loss_note = " (lab: last batch)" if c.framework == "pytorch" else ""
    axes[0].set(title="Training accuracy", xlabel="epoch", ylabel="accuracy (%)")
    axes[1].set(title=f"Training loss{loss_note}", xlabel="epoch", ylabel="loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[1].legend(fontsize=8)
    fig.suptitle(c.title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def comparison_section(c: Comparison, results: dict[str, list[dict]], labs: dict[str, dict | None], png: str) -> list[str]:
    lines = [f"## {c.title}", "", f"![{c.title}]({png})", ""]
    lines += ["| variant | test acc % | lab % | diff | test loss | lab loss | params | training time s | runs |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for v in c.variants:
        runs, lab = results[v.name], labs[v.name]
        if not runs:
            lines.append(f"| {v.name} | no finished run | {lab['test_acc']:.2f} |" if lab else f"| {v.name} | no finished run | – |")
            continue
        acc = [r["test_acc"] for r in runs]
        diff = f"{statistics.fmean(acc) - lab['test_acc']:+.2f}" if lab else "–"
        lab_acc, lab_loss = (f"{lab['test_acc']:.2f}", f"{lab['test_loss']:.4f}") if lab else ("–", "–")
        folders = ", ".join(f"`{r['run']}`" for r in runs)
        lines.append(f"| {v.name} | {shown(acc)} | {lab_acc} | {diff} | {shown([r['test_loss'] for r in runs], 4)} | "
                     f"{lab_loss} | {runs[0]['params']:,} | {shown([r['seconds'] for r in runs], 0)} | {folders} |")
    for key, title in (("train_acc", "Training accuracy per epoch (%)"), ("train_loss", "Training loss per epoch")):
        epochs = max([len(per_epoch(results[v.name], key)) for v in c.variants] + [len(l[key]) for l in labs.values() if l])
        lines += ["", f"### {title}", "", "| variant | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " |",
                  "| --- |" + " ---: |" * epochs]
        for v in c.variants:
            values = per_epoch(results[v.name], key)
            cells = [shown(e, 4 if key == "train_loss" else 2) for e in values]
            lines.append(f"| {v.name} | " + " | ".join(cells + ["–"] * (epochs - len(cells))) + " |")
            if labs[v.name]:
                lines.append(f"| {v.name} (lab) | " + " | ".join(f"{x:.4f}" if key == "train_loss" else f"{x:.2f}" for x in labs[v.name][key]) + " |")
    lines += [""]
    if c.framework == "pytorch":
        lines += ["The lab's PyTorch loss column is the loss of the last batch of each epoch, not the epoch mean that "
                  "lab-cnn logs as `train/loss`: compare its trend, not its values. The lab counted training accuracy "
                  "in train mode (dropout on), as lab-cnn does.", ""]
    if c.framework == "keras" and any(v.config for v in c.variants):
        lines += ["The lab figures beside the PyTorch port are those of the lab's Keras runs of the same network.", ""]
    return lines


def write_report(folder: Path) -> Path:
    """``folder/report.md`` and one PNG per comparison, from ``folder/study.yaml`` and lightning_logs/."""
    spec = yaml.safe_load((folder / "study.yaml").read_text())
    sections: list[str] = []
    conclusions: list[str] = []
    shown_runs: dict[str, dict] = {}  # by run folder: a run two comparisons share counts once
    for cs in spec["comparisons"]:
        variants = [Variant(**{k: v for k, v in vs.items() if k != "keys"}) for vs in cs["variants"]]
        c = Comparison(**{**cs, "variants": variants})
        results: dict[str, list[dict]] = {}
        for v, vs in zip(variants, cs["variants"]):
            results[v.name] = []
            for key in vs["keys"]:
                done = finished_runs(v.run_root(key))
                if done and key not in shown_runs:
                    shown_runs[key] = read_run(done[-1])
                if done:
                    results[v.name].append(shown_runs[key])
        labs = {v.name: lab_figures(v, c.framework) for v in variants}
        png = f"{c.name}.png"
        plot(c, results, labs, folder / png)
        sections += comparison_section(c, results, labs, png)
        if c.claim:
            measured, holds = verdict(c, results)
            conclusions.append(f"| {c.claim} | {c.title} | {measured} | {holds} |")
    ran = spec["ran"]
    process_seconds = sum(r["process_seconds"] for r in shown_runs.values())
    minutes, seconds = divmod(int(ran["seconds"]), 60)
    limit = (f", {spec['limit_batches']} training batches (lab-cnn also validated and tested on that many batches only)"
             if spec.get("limit_batches") else "")
    head = [
        f"# Study `{spec['name']}`", "",
        f"{spec['seeds']} seed(s) per variant (1..{spec['seeds']}), {spec['epochs']} epoch(s){limit}. The study command "
        f"finished {ran['finished']} after {minutes} min {seconds} s on {ran['machine']} (runs finished earlier were not rerun); "
        f"the runs shown took {process_seconds / 60:.1f} min of processes in all. "
        f"Rebuild this page from lightning_logs/ with `lab-cnn report {folder}`.", "",
        "Accuracies are percent of the 10,000 test images (training: of the images seen in the epoch). `lab` is the lab "
        "report's figure, `diff` the measured mean minus it, in points. With several seeds a cell reads mean ± standard "
        "deviation.", "",
    ]
    if conclusions:
        head += ["## The lab's conclusions", "", f"A conclusion holds beyond the seed-to-seed spread when {SPREAD_RULE}.", "",
                 "| the lab concluded | comparison | measured test acc % (mean) | verdict |", "| --- | --- | --- | --- |",
                 *conclusions, ""]
    if ran.get("failures"):
        head += ["## Failed runs", "", *[f"- {name}: {error}" for name, error in ran["failures"].items()], ""]
    report = folder / "report.md"
    report.write_text("\n".join(head + sections))
    return report
