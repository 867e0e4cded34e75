"""``lab-cnn report``: a study's tables, plots and verdicts, built from its ``study.yaml`` and the runs
recorded in ``runs.json`` beside it (committed with the report), so the page rebuilds anywhere.

Each of the lab's conclusions is judged across seeds with Welch's t-test (scipy.stats.ttest_ind with
``equal_var=False``, two-sided) and the 95% confidence interval of the difference of the means.
"""

from __future__ import annotations

import io
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure  # figures without pyplot: a notebook's backend stays its own

from lab_cnn.errors import UserError
from lab_cnn.studies.records import FIX, RUNS, SPEC, read_report, replace_files
from lab_cnn.studies.study import Comparison, Variant

SIGNIFICANCE = 0.05
RULE = (
    "A conclusion is supported when the expected best variant's mean test accuracy is above every other's and "
    "Welch's t-test (scipy.stats.ttest_ind with equal_var=False, two-sided) gives p < 0.05 for each difference; "
    "the interval is the 95% confidence interval of the difference of the means (Welch-Satterthwaite degrees of "
    "freedom)."
)


def lab_figures(variant: Variant, framework: str) -> dict[str, Any] | None:
    """The lab's numbers for a variant in the report's units (percent; the PyTorch lab counted correct images)."""
    lab = variant.lab_numbers()
    if lab is None:
        return None
    scale = 100 if framework == "keras" else 1
    test_acc = 100 * lab["test_acc"] if "test_acc" in lab else lab["test_correct"] / 100
    return {
        "train_acc": [scale * a for a in lab["train_acc"]],
        "train_loss": lab["train_loss"],
        "test_acc": test_acc,
        "test_loss": lab["test_loss"],
    }


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


def welch(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """Difference of the means of ``a`` and ``b``, its 95% confidence interval, and Welch's two-sided p-value."""
    from scipy.stats import ttest_ind

    result = ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(1 - SIGNIFICANCE)
    return statistics.fmean(a) - statistics.fmean(b), float(interval.low), float(interval.high), float(result.pvalue)


def described(diff: float, low: float, high: float, p: float) -> str:
    shown_p = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    return f"difference {diff:+.2f} points, 95% CI [{low:+.2f}, {high:+.2f}], {shown_p}"


def listed(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def unfinished(names: list[str]) -> str:
    return f"{listed(names)} {'have' if len(names) > 1 else 'has'} no finished run"


def test_sets(results: dict[str, list[dict]]) -> dict[str, list[int]]:
    """How many test images each variant's runs were tested on (those with runs), fewest first. A run built by
    hand for a verdict alone may leave the number out: one test set for all, then."""
    return {name: sorted({r.get("test_images", 0) for r in runs}) for name, runs in results.items() if runs}


def tested_on(results: dict[str, list[dict]]) -> str:
    """Each variant's number of test images, e.g. ``fc50 10,000, fc25 128 or 10,000 (by run)``."""
    return ", ".join(
        f"{name} {' or '.join(f'{n:,}' for n in counts)}{' (by run)' * (len(counts) > 1)}"
        for name, counts in test_sets(results).items()
    )


def one_test_set(results: dict[str, list[dict]]) -> bool:
    return len({n for counts in test_sets(results).values() for n in counts}) == 1


def verdict(c: Comparison, results: dict[str, list[dict]]) -> tuple[str, str]:
    """What was measured for the lab's conclusion of comparison ``c`` (means ± std), and the verdict. What it
    cannot be judged on is named: a variant without a finished run, runs tested on different numbers of images."""
    accs = {name: [r["test_acc"] for r in runs] for name, runs in results.items() if runs}
    ranked = sorted(accs.items(), key=lambda kv: -statistics.fmean(kv[1]))
    seeds_differ = len({len(a) for a in accs.values()}) > 1  # a variant with failed seeds says how many it has
    measured = (
        ", ".join(f"{n} {shown(a)}" + f" ({len(a)} seeds)" * seeds_differ for n, a in ranked) or "no finished run"
    )
    missing = [name for name, runs in results.items() if not runs]
    if c.expect_best is None:
        return measured, "cannot tell: the study names no variant it expects to be best (expect_best)"
    if c.expect_best in missing:
        return measured, f"cannot tell: {c.expect_best}, the expected best, has no finished run"
    if len(accs) < 2:  # the expected best alone: the others failed, or the comparison has one variant
        return measured, f"cannot tell: {unfinished(missing) if missing else 'one variant, nothing to compare it with'}"
    if not one_test_set(results):
        return measured, (
            f"cannot tell: the runs were tested on different numbers of images ({tested_on(results)}), "
            "and no claim is judged across test sets"
        )
    judged = judgement(accs.pop(c.expect_best), accs)
    if missing:
        return measured, (
            f"cannot tell of all {len(results)} variants: {unfinished(missing)}; against {listed(list(accs))} alone: "
            f"{judged}"
        )
    return measured, judged


def judgement(best: list[float], accs: dict[str, list[float]]) -> str:
    """The verdict of the expected best variant's accuracies ``best`` against each other variant's ``accs``."""
    seeds = min(len(a) for a in [best, *accs.values()])
    if seeds < 2:
        ahead = all(statistics.fmean(best) > statistics.fmean(a) for a in accs.values())
        return (
            "holds in this run" if ahead else "does not hold in this run"
        ) + " (one seed: no spread to judge; use --seeds N)"
    if any(len(set(a)) < 2 for a in [best, *accs.values()]):
        return f"cannot tell: a variant gave the same accuracy with every seed ({seeds} seeds)"
    tests = {name: welch(best, a) for name, a in accs.items()}
    details = "; ".join((f"vs {name}: " if len(tests) > 1 else "") + described(*t) for name, t in tests.items())
    if all(diff > 0 and p < SIGNIFICANCE for diff, _, _, p in tests.values()):
        return f"supported ({details})"
    if any(diff < 0 and p < SIGNIFICANCE for diff, _, _, p in tests.values()):
        return f"contradicted ({details})"
    return f"not supported at {seeds} seeds ({details})"


def within(lab: float, values: list[float]) -> str:
    """Where the lab's single figure falls among the measured ones (and its z-score among them)."""
    below = sum(v < lab for v in values)
    mean, std = mean_std(values)
    z = f" (z {(lab - mean) / std:+.1f})" if len(values) > 1 and std > 0 else ""
    return f"above {below} of {len(values)}{z}"


def plot(c: Comparison, results: dict[str, list[dict]], labs: dict[str, Any]) -> bytes:
    """Training accuracy and loss per epoch (band: ± one std across seeds), and each seed's test accuracy
    with mean ± std; the lab's figures dashed or as crosses. A PNG's bytes."""
    with matplotlib.rc_context({"text.parse_math": False}):  # a "$" in a name or title is a dollar, not TeX
        fig = Figure(figsize=(15, 4))
        draw(fig, c, results, labs)
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=100, metadata={"Software": None})
    return png.getvalue()


def draw(fig: Figure, c: Comparison, results: dict[str, list[dict]], labs: dict[str, Any]) -> None:
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [4, 4, 3]})
    for i, v in enumerate(c.variants):
        color = f"C{i}"
        for ax, key in zip(axes, ("train_acc", "train_loss")):
            values = per_epoch(results[v.name], key)
            if values:
                epochs = range(1, len(values) + 1)
                stats = [mean_std(e) for e in values]
                ax.plot(epochs, [m for m, _ in stats], "o-", color=color, label=f"{v.name} (measured)")
                if len(values[0]) > 1:
                    ax.fill_between(
                        epochs, [m - s for m, s in stats], [m + s for m, s in stats], color=color, alpha=0.2
                    )
            if labs[v.name]:
                lab = labs[v.name][key]
                ax.plot(range(1, len(lab) + 1), lab, "s--", color=color, alpha=0.6, label=f"{v.name} (lab)")
        accs = [r["test_acc"] for r in results[v.name]]
        if accs:
            mean, std = mean_std(accs)
            axes[2].scatter([i] * len(accs), accs, color=color, alpha=0.5, s=18)
            axes[2].errorbar(i + 0.15, mean, yerr=std, fmt="o", color=color, capsize=4)
        if labs[v.name]:
            axes[2].scatter(i - 0.15, labs[v.name]["test_acc"], marker="x", color=color, s=50)
    loss_note = " (lab: last batch)" if c.framework == "pytorch" else ""
    axes[0].set(title="Training accuracy", xlabel="epoch", ylabel="accuracy (%)")
    axes[1].set(title=f"Training loss{loss_note}", xlabel="epoch", ylabel="loss")
    axes[2].set(
        title="Test accuracy: seeds, mean ± std, lab (x)",
        ylabel="accuracy (%)",
        xticks=range(len(c.variants)),
        xticklabels=[v.name for v in c.variants],
    )
    for ax in axes:
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[1].legend(fontsize=8)
    fig.suptitle(c.title)
    fig.tight_layout()


def comparison_section(
    c: Comparison, results: dict[str, list[dict]], labs: dict[str, Any], png: str, test_sets_differ: bool
) -> list[str]:
    """A comparison's plot and tables; on a page whose runs were not all tested on one test set, each variant's."""
    lines = [f"## {c.title}", "", f"![{c.title}]({png})", ""]
    lines += [
        "| variant | test acc % | lab % | lab among the seeds | diff | test loss | lab loss | params "
        "| training time s |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for v in c.variants:
        runs, lab = results[v.name], labs[v.name]
        lab_acc, lab_loss = (f"{lab['test_acc']:.2f}", f"{lab['test_loss']:.4f}") if lab else ("–", "–")
        if not runs:
            lines.append(f"| {v.name} | no finished run | {lab_acc} | – | – | – | {lab_loss} | – | – |")
            continue
        acc = [r["test_acc"] for r in runs]
        diff, among = (
            (f"{statistics.fmean(acc) - lab['test_acc']:+.2f}", within(lab["test_acc"], acc)) if lab else ("–", "–")
        )
        lines.append(
            f"| {v.name} | {shown(acc)} | {lab_acc} | {among} | {diff} | {shown([r['test_loss'] for r in runs], 4)} | "
            f"{lab_loss} | {runs[0]['params']:,} | {shown([r['seconds'] for r in runs], 0)} |"
        )
    if test_sets_differ and any(results.values()):
        apart = "" if one_test_set(results) else ": not one test set, so no claim is judged across them"
        lines += ["", f"Test images per variant: {tested_on(results)}{apart}."]
    for key, title in (("train_acc", "Training accuracy per epoch (%)"), ("train_loss", "Training loss per epoch")):
        epochs = max(
            [len(per_epoch(results[v.name], key)) for v in c.variants] + [len(lab[key]) for lab in labs.values() if lab]
        )
        lines += [
            "",
            f"### {title}",
            "",
            "| variant | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " |",
            "| --- |" + " ---: |" * epochs,
        ]
        for v in c.variants:
            cells = [shown(e, 4 if key == "train_loss" else 2) for e in per_epoch(results[v.name], key)]
            lines.append(f"| {v.name} | " + " | ".join(cells + ["–"] * (epochs - len(cells))) + " |")
            if labs[v.name]:
                lab_cells = (f"{x:.4f}" if key == "train_loss" else f"{x:.2f}" for x in labs[v.name][key])
                lines.append(f"| {v.name} (lab) | " + " | ".join(lab_cells) + " |")
    lines += [""]
    if c.framework == "pytorch":
        lines += [
            "The lab's PyTorch loss column is the loss of the last batch of each epoch, not the epoch mean that "
            "lab-cnn logs as `train/loss`: compare its trend, not its values. The lab counted training accuracy "
            "in train mode (dropout on), as lab-cnn does.",
            "",
        ]
    if c.framework == "keras" and any(v.config for v in c.variants):
        lines += ["The lab figures beside the PyTorch port are those of the lab's Keras runs of the same network.", ""]
    return lines


def tested_images(results: list[tuple[Variant, dict]]) -> str:
    """How many test images the accuracies are of: one number, one per framework when that is what differs,
    else pointing to each comparison's own count per variant (:func:`comparison_section`)."""
    counts = {(v.keras is None, r["test_images"]) for v, r in results}
    if len({n for _, n in counts}) == 1:
        return f"the {counts.pop()[1]:,} test images"
    if len({lab_cnn for lab_cnn, _ in counts}) < len(counts):  # runs of one framework differ among themselves
        return (
            "the test images each run was tested on, not the same number for every run: each comparison says how many"
        )
    per_kind = ", ".join(
        f"{n:,} for the {'lab-cnn' if lab_cnn else 'Keras'} runs" for lab_cnn, n in sorted(counts, reverse=True)
    )
    return f"the test images each run was tested on: {per_kind}"


def check_filed(folder: Path, key: str, run: dict[str, Any], where: str, seed: int, made: str) -> None:
    """A run filed in study.yaml as ``where`` is a run of that seed, made as that variant's runs are made: a
    hand-edited record that swapped two variants' keys would give a verdict on the wrong runs."""
    if run["seed"] != seed or run.get("run", made) != made:
        raise UserError(
            f"{folder / RUNS}: entry {key!r}: seed {run['seed']}, run {run.get('run')!r}; {folder / SPEC} files it as "
            f"{where} ({made}); {FIX}"
        )


def write_report(folder: Path) -> Path:
    """``folder/report.md`` and one PNG per comparison, from ``folder/study.yaml`` and ``folder/runs.json``; every
    file made before any is written, each written whole or not at all."""
    spec, recorded = read_report(folder)  # both checked, before any file is written
    if not recorded:
        raise UserError(f"{folder}: no {RUNS} with finished runs; run `lab-cnn study STUDY.yaml` first")
    sections: list[str] = []
    conclusions: list[str] = []
    shown_runs: dict[str, tuple[Variant, dict]] = {}  # a run two comparisons share counts once
    plots: dict[str, bytes] = {}
    images = {
        recorded[k]["test_images"]
        for cs in spec["comparisons"]
        for vs in cs["variants"]
        for k in vs["keys"]
        if k in recorded
    }
    test_sets_differ = len(images) > 1
    for cs in spec["comparisons"]:
        variants = [Variant(**{k: v for k, v in vs.items() if k != "keys"}) for vs in cs["variants"]]
        c = Comparison(**{**cs, "variants": variants})
        results = {
            v.name: [recorded[key] for key in vs["keys"] if key in recorded] for v, vs in zip(variants, cs["variants"])
        }
        for v, vs in zip(variants, cs["variants"]):
            for seed, key in enumerate(vs["keys"], 1):
                if key in recorded:
                    check_filed(folder, key, recorded[key], f"{c.name}/{v.name} seed {seed}", seed, v.describe())
                    shown_runs[key] = (v, recorded[key])
        labs = {v.name: lab_figures(v, c.framework) for v in variants}
        png = f"{c.name}.png"
        plots[png] = plot(c, results, labs)
        sections += comparison_section(c, results, labs, png, test_sets_differ)
        if c.claim:
            measured, judged = verdict(c, results)
            conclusions.append(f"| {c.claim} | {c.title} | {measured} | {judged} |")
    runs = [r for _, r in shown_runs.values()]
    machines = "; ".join(
        f"{machine} ({n} run{'s' * (n > 1)})" for machine, n in Counter(r["machine"] for r in runs).most_common()
    )
    process_minutes = sum(r["process_seconds"] for r in runs) / 60
    limit = (
        f", {spec['limit_batches']} batches per stage (lab-cnn trained, validated and tested on that many batches; "
        "Keras trained on that many)"
        if spec.get("limit_batches")
        else ""
    )
    head = [
        f"# Study `{spec['name']}`",
        "",
        f"Seeds 1..{spec['seeds']} per variant, {spec['epochs']} epoch(s){limit}. {len(runs)} runs, "
        f"{process_minutes:.1f} min of run processes in all, made on {machines}. This page is built from `{RUNS}` "
        f"beside it (each run's settings, per-epoch metrics and test results, read from its event files when it "
        f"finished): rebuild it with `lab-cnn report {folder}`.",
        "",
        f"Test accuracies are percent of {tested_images(list(shown_runs.values()))}; training accuracies, of the "
        "images seen in the epoch. `lab` is the lab report's figure, `diff` the measured mean minus it, in points; "
        "`lab among the "
        "seeds` says how many seeds' accuracies the lab's figure is above. With several seeds a cell reads mean ± "
        "standard deviation. Training time is from each run's event files (its epochs, with their validation), on a "
        "machine that other work may have shared: for speed, see benchmarks/RESULTS.md.",
        "",
    ]
    if conclusions:
        head += [
            "## The lab's conclusions",
            "",
            RULE,
            "",
            "| the lab concluded | comparison | measured test acc % | verdict |",
            "| --- | --- | --- | --- |",
            *conclusions,
            "",
        ]
    if spec.get("failures"):
        head += ["## Failed runs", "", *[f"- {failure}" for failure in spec["failures"]], ""]
    report = folder / "report.md"
    replace_files({**{folder / png: image for png, image in plots.items()}, report: "\n".join(head + sections)})
    return report
