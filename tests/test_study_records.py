"""The contracts of a study's report folder (issue 22): it belongs to one study; runs tested on different test
sets are said so per variant and judged against no other; a variant with no finished run is named in its verdict;
a hand-edited ``runs.json`` or ``study.yaml`` is one line naming the file and the entry, with nothing rewritten.
No case trains: each starts from a copy of a committed report, edited as a user would edit it."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from lab_cnn.errors import UserError
from lab_cnn.studies.records import check_folder
from lab_cnn.studies.report import verdict
from lab_cnn.studies.study import Comparison, Variant, load_study
from tests.helpers import DATA_DIR, REPO, run, run_in_process

POOLING_MAX = "baseline-s1-23fffd4528"  # reports/pooling: seed 1 of max (the baseline config)
POOLING_AVG = "avgpool-s1-577ac01529"  # and of avg, the first run in its runs.json


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The one ``lab-cnn: error:`` line of a refused command, which exited 2 without a traceback."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("lab-cnn: error: ")]
    assert len(errors) == 1 and result.stderr.strip() == errors[0], result.stderr[-2000:]
    return errors[0]


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes: what a refused command must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def clone(tmp_path: Path, *reports: str) -> Path:
    """What a fresh clone has of the committed ``reports`` and the configs their studies name, in ``tmp_path``."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    for report in reports:
        shutil.copytree(REPO / "reports" / report, tmp_path / "reports" / report, ignore=shutil.ignore_patterns("logs"))
    return tmp_path


def edit_runs(folder: Path, change: Callable[[dict], object]) -> None:
    runs = json.loads((folder / "runs.json").read_text())
    change(runs)
    (folder / "runs.json").write_text(json.dumps(runs, indent=1))  # NaN and Infinity as JSON's readers take them


def edit_spec(folder: Path, change: Callable[[dict], object]) -> None:
    spec = yaml.safe_load((folder / "study.yaml").read_text())
    change(spec)
    (folder / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def report(folder: Path, cwd: Path) -> str:
    result = run_in_process("report", str(folder.relative_to(cwd)), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return (folder / "report.md").read_text()


def conclusion(page: str, title: str) -> list[str]:
    """The cells of a comparison's row in the table of the lab's conclusions."""
    line = next(line for line in page.splitlines() if line.startswith("| ") and f" | {title} | " in line)
    return [c.strip() for c in line.strip("|").split("|")]


# 1. A report folder belongs to one study


def other_pooling(cwd: Path) -> list[str]:
    """The issue's case: another study file named pooling, of max alone."""
    (cwd / "mine.yaml").write_text(
        "name: pooling\ncomparisons:\n  pooling:\n    title: max\n    framework: pytorch\n"
        "    variants:\n      max: {config: configs/baseline.yaml}\n"
    )
    return ["mine.yaml"]


def retitled(cwd: Path) -> list[str]:
    """pooling.yaml with another claim: the same name, comparison and variants, another study all the same."""
    text = (cwd / "configs/studies/pooling.yaml").read_text()
    (cwd / "mine.yaml").write_text(text.replace("Max pooling gives better", "Max pooling gives far better"))
    return ["mine.yaml"]


def edited_config(cwd: Path) -> list[str]:
    """pooling.yaml itself, after its avgpool config was edited: its runs are other runs."""
    config = cwd / "configs/avgpool.yaml"
    config.write_text(config.read_text().replace("batch_size: 128", "batch_size: 64"))
    return ["configs/studies/pooling.yaml"]


def runs_only(cwd: Path) -> list[str]:
    """A folder holding pooling's runs and no study.yaml (as a stopped first run leaves it), given to neurons."""
    (cwd / "stopped").mkdir()
    shutil.copy(cwd / "reports/pooling/runs.json", cwd / "stopped/runs.json")
    return ["configs/studies/neurons.yaml", "--out", "stopped"]


FOLDERS = {  # how a study is pointed at a folder that is not its own, and what the one line says
    "another study file named pooling": (
        other_pooling,
        "reports/pooling holds the report of 'pooling' whose comparison "
        "pooling has variants ['max', 'avg']; this one's ['max']",
    ),
    "another study's report by --out": (
        lambda _: ["configs/studies/pooling.yaml", "--out", "reports/lab"],
        "reports/lab holds the report of the study 'lab'; this one is 'pooling'",
    ),
    "--out configs": (
        lambda _: ["configs/studies/pooling.yaml", "--out", "configs"],
        "configs holds other files than a study's report (avgpool.yaml, baseline.yaml,",
    ),
    "--out .": (
        lambda _: ["configs/studies/pooling.yaml", "--out", "."],
        ". holds other files than a study's report (configs, reports)",
    ),
    "--out a file": (
        lambda _: ["configs/studies/pooling.yaml", "--out", "configs/baseline.yaml"],
        "configs/baseline.yaml is a file, not a report folder",
    ),
    "--out the reports": (
        lambda _: ["configs/studies/pooling.yaml", "--out", "reports"],
        "reports holds other files than a study's report (lab, pooling)",
    ),
    "--out inside another study's report": (
        lambda _: ["configs/studies/pooling.yaml", "--out", "reports/lab/mine"],
        "reports/lab/mine is inside the report folder",
    ),
    "the same study with another claim": (retitled, "whose comparison pooling has claim 'Max pooling gives better"),
    "its own study after its config changed": (edited_config, "whose pooling/avg has other runs (its config's content"),
    "another study's runs without study.yaml": (runs_only, "stopped holds runs of another study in runs.json"),
}

# the folders without a study.yaml: --force writes the report among what they hold
NO_REPORT = {"--out configs", "--out .", "--out the reports", "another study's runs without study.yaml"}


@pytest.mark.parametrize("case", FOLDERS)
def test_a_report_folder_belongs_to_one_study(case: str, tmp_path) -> None:
    cwd = clone(tmp_path, "pooling", "lab")
    make, says = FOLDERS[case]
    args = make(cwd)
    before = files(cwd)
    line = one_line_error(run_in_process("study", *args, "--data-dir", str(DATA_DIR), cwd=cwd))
    assert says in line, line
    if case not in ("--out a file", "--out inside another study's report"):  # which --force cannot replace
        forced = "write the report there all the same" if case in NO_REPORT else "replace it"
        assert line.endswith(f"pass --out for another folder, or --force to {forced}"), line
    assert files(cwd) == before  # nothing written, not even MNIST fetched


def test_force_is_the_user_asking_to_replace_another_studys_report(tmp_path, monkeypatch) -> None:
    cwd = clone(tmp_path, "lab")
    monkeypatch.chdir(cwd)
    pooling = load_study("configs/studies/pooling.yaml")
    with pytest.raises(UserError, match="or --force to replace it"):
        check_folder(Path("reports/lab"), pooling, force=False)
    check_folder(Path("reports/lab"), pooling, force=True)


def test_its_own_study_goes_on_in_a_committed_report_and_rewrites_nothing(tmp_path) -> None:
    cwd = clone(tmp_path, "pooling")
    before = files(cwd / "reports")
    again = run("study", "configs/studies/pooling.yaml", "--data-dir", str(DATA_DIR), cwd=cwd)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished before, not rerun") == 2
    assert files(cwd / "reports") == before


# 2. Runs tested on different test sets


def test_runs_of_different_test_sets_are_said_per_variant_and_no_claim_is_judged_across_them(tmp_path) -> None:
    cwd = clone(tmp_path, "lab")
    lab = cwd / "reports/lab"
    committed = (lab / "report.md").read_text()
    edit_runs(lab, lambda runs: [r.update(test_images=128) for k, r in runs.items() if k.startswith("avgpool")])
    page = report(lab, cwd)
    head = "Test accuracies are percent of the test images each run was tested on, not the same number for every run"
    assert f"{head}: each comparison says how many;" in page
    assert "Test images per variant: max 10,000, avg 128: not one test set, so no claim is judged across them." in page
    assert conclusion(page, "PyTorch: max vs average pooling")[3] == (
        "cannot tell: the runs were tested on different numbers of images (max 10,000, avg 128), "
        "and no claim is judged across test sets"
    )
    # not in the issue: a comparison of one test set on the same page is judged, and says its count per variant
    assert "Test images per variant: fc50 10,000, fc25 10,000." in page
    neurons = "PyTorch: 50 vs 25 hidden neurons"
    assert conclusion(page, neurons)[3] == conclusion(committed, neurons)[3]
    assert conclusion(page, neurons)[3].startswith("supported (difference +")


def test_one_variant_tested_on_two_test_sets_is_said_so_and_gets_no_verdict(tmp_path) -> None:
    """Not in the issue: the runs of one variant differ among themselves."""
    cwd = clone(tmp_path, "pooling")
    folder = cwd / "reports/pooling"
    edit_runs(folder, lambda runs: runs[POOLING_MAX].update(test_images=384))
    page = report(folder, cwd)
    assert "Test images per variant: max 384 or 10,000 (by run), avg 10,000: not one test set" in page
    assert conclusion(page, "PyTorch: max vs average pooling")[3].startswith(
        "cannot tell: the runs were tested on different numbers of images (max 384 or 10,000 (by run), avg 10,000)"
    )


def test_committed_reports_of_one_test_set_say_one_number() -> None:
    for folder in (REPO / "reports").glob("*/report.md"):
        page = folder.read_text()
        assert (
            "Test accuracies are percent of the 10,000 test images;" in page and "Test images per variant" not in page
        )


# 3. A variant without a finished run


def keras_activation(tmp_path: Path) -> Path:
    """The lab's three-way comparison (ReLU best of relu, sigmoid, tanh) in a report of its own."""
    cwd = clone(tmp_path, "lab")
    folder = cwd / "reports/lab"
    edit_spec(folder, lambda spec: spec.update(comparisons=spec["comparisons"][:1]))
    return folder


def test_a_variant_whose_every_run_failed_is_named_in_the_verdict(tmp_path) -> None:
    folder = keras_activation(tmp_path)
    title = "Keras: ReLU vs sigmoid vs tanh"
    committed = conclusion((folder / "report.md").read_text(), title)[2:]  # the three variants' verdict
    edit_runs(folder, lambda runs: [runs.pop(k) for k in list(runs) if k.startswith("keras-tanh-2")])
    edit_spec(
        folder, lambda spec: spec.update(failures=[f"keras_activation/tanh seed {s}: failed" for s in range(1, 6)])
    )
    page = report(folder, tmp_path)
    measured, judged = conclusion(page, title)[2:]
    assert measured == committed[0].split(", tanh ")[0]  # relu's and sigmoid's numbers as they were
    against_sigmoid = committed[1].split("vs sigmoid: ")[1].split("; vs tanh")[0]  # difference, interval, p
    assert judged == (
        f"cannot tell of all 3 variants: tanh has no finished run; against sigmoid alone: supported ({against_sigmoid})"
    )
    assert "| tanh | no finished run |" in page and "- keras_activation/tanh seed 5: failed" in page


def test_a_verdict_names_what_it_lacks() -> None:
    """Not in the issue: the expected best failed; all others failed; some seeds failed."""
    three = [Variant("relu"), Variant("sigmoid"), Variant("tanh")]
    c = Comparison("c", "t", "keras", three, claim="relu best", expect_best="relu")
    good = {"relu": [97.3, 97.4, 97.2], "sigmoid": [96.0, 96.1, 95.9], "tanh": [96.5, 96.4, 96.6]}

    def judged(**accs: list[float]) -> tuple[str, str]:
        return verdict(c, {name: [{"test_acc": a} for a in accs.get(name, [])] for name in good})

    assert judged(sigmoid=good["sigmoid"], tanh=good["tanh"])[1] == (
        "cannot tell: relu, the expected best, has no finished run"
    )
    assert judged(relu=good["relu"]) == ("relu 97.30 ± 0.10", "cannot tell: sigmoid and tanh have no finished run")
    measured, verdict_ = judged(relu=good["relu"], sigmoid=good["sigmoid"][:2], tanh=good["tanh"])
    assert measured == "relu 97.30 ± 0.10 (3 seeds), tanh 96.50 ± 0.10 (3 seeds), sigmoid 96.05 ± 0.07 (2 seeds)"
    assert verdict_.startswith("supported (vs sigmoid: difference")
    nothing = verdict(c, {name: [] for name in good})
    assert nothing == ("no finished run", "cannot tell: relu, the expected best, has no finished run")


# 4. Hand-edited records


def truncated(folder: Path) -> None:
    text = (folder / "runs.json").read_text()
    (folder / "runs.json").write_text(text[: len(text) // 2])


def run_twice(folder: Path) -> None:
    """runs.json with its first run (avg's seed 1: runs.json is sorted by key) a second time, another number."""
    text = (folder / "runs.json").read_text()
    entry = text[text.index(f' "{POOLING_AVG}": ') : text.index("\n },\n") + 4]
    (folder / "runs.json").write_text(text.replace(entry, entry + entry.replace("93.22", "99.99"), 1))


def acc_twice(folder: Path) -> None:
    text = (folder / "runs.json").read_text()
    line = next(line for line in text.splitlines() if line.startswith('  "test_acc": '))  # the first run's
    (folder / "runs.json").write_text(text.replace(line, f'{line}\n  "test_acc": 99.9,', 1))


def run_field(field: str, value: object) -> Callable[[Path], None]:
    return lambda folder: edit_runs(folder, lambda runs: runs[POOLING_AVG].update({field: value}))


def no_run_field(field: str) -> Callable[[Path], None]:
    return lambda folder: edit_runs(folder, lambda runs: runs[POOLING_AVG].pop(field))


def spec_change(change: Callable[[dict], object]) -> Callable[[Path], None]:
    return lambda folder: edit_spec(folder, change)


def avg(spec: dict) -> dict:
    return spec["comparisons"][0]["variants"][1]


RUNS_ENTRY = f"reports/pooling/runs.json: entry '{POOLING_AVG}': "
SPEC = "reports/pooling/study.yaml: "
DAMAGES: dict[str, tuple[Callable[[Path], object], str]] = {  # the cases, then others
    "truncated JSON": (truncated, "reports/pooling/runs.json: not valid JSON ("),
    "a run without test_acc": (no_run_field("test_acc"), RUNS_ENTRY + "no test_acc"),
    "test_acc in quotes": (run_field("test_acc", "97.5"), RUNS_ENTRY + "test_acc: '97.5' is not allowed; use a number"),
    "test_acc NaN": (
        run_field("test_acc", math.nan),
        RUNS_ENTRY + "test_acc: nan is not allowed; use a number in [0, 100]",
    ),
    "a run given twice": (run_twice, f"reports/pooling/runs.json: '{POOLING_AVG}' is given twice"),
    "no seeds": (spec_change(lambda s: s.pop("seeds")), SPEC + "no seeds"),
    "no keys": (spec_change(lambda s: avg(s).pop("keys")), SPEC + "comparisons.pooling.variants.avg: no keys"),
    "no framework": (
        spec_change(lambda s: s["comparisons"][0].pop("framework")),
        SPEC + "comparisons.pooling: no framework",
    ),
    "test_acc above 100": (
        run_field("test_acc", 932.2),
        RUNS_ENTRY + "test_acc: 932.2 is not allowed; use a number in [0, 100]",
    ),
    "test_loss Infinity": (
        run_field("test_loss", math.inf),
        RUNS_ENTRY + "test_loss: inf is not allowed; use a number >= 0",
    ),
    "a field given twice": (acc_twice, RUNS_ENTRY + "'test_acc' is given twice"),
    "train_acc a number": (
        run_field("train_acc", 86.0),
        RUNS_ENTRY + "train_acc: 86.0 is not allowed; use a list of one number per epoch",
    ),
    "train_acc with a text": (
        run_field("train_acc", [45.7, 77.4, "81.6", 84.2, 86.0]),
        RUNS_ENTRY + "train_acc[2]: '81.6' is not allowed",
    ),
    "train_loss of 4 epochs": (
        run_field("train_loss", [1.5, 0.7, 0.5, 0.4]),
        RUNS_ENTRY + "5 epochs of train_acc, 4 of train_loss",
    ),
    "4 epochs of 5": (
        lambda f: edit_runs(f, lambda r: [r[POOLING_AVG][k].pop() for k in ("train_acc", "train_loss")]),
        RUNS_ENTRY + "4 epochs of train_acc; its study (reports/pooling/study.yaml) has 5",
    ),
    "test_images 0": (
        run_field("test_images", 0),
        RUNS_ENTRY + "test_images: 0 is not allowed; use a whole number >= 1",
    ),
    "params true": (run_field("params", True), RUNS_ENTRY + "params: true is not allowed"),  # as the file writes it
    "no machine": (no_run_field("machine"), RUNS_ENTRY + "no machine"),
    "filed under another key": (run_field("key", POOLING_MAX), RUNS_ENTRY + f"its key is '{POOLING_MAX}'"),
    "a run that is a number": (
        lambda f: edit_runs(f, lambda r: r.update({POOLING_AVG: 93.2})),
        RUNS_ENTRY + "93.2 is not allowed",
    ),
    "a lone surrogate in a text": (
        run_field("machine", "\ud800"),
        RUNS_ENTRY + "machine: '\\ud800' is not allowed: character 1 is not a character",
    ),
    "a number too large for a float": (run_field("test_loss", 10**400), RUNS_ENTRY + "test_loss: 10000"),
    "a number of 5000 digits": (
        lambda f: (f / "runs.json").write_text((f / "runs.json").read_text().replace("21840", "1" + "0" * 5000, 1)),
        "reports/pooling/runs.json: not JSON lab-cnn can read (",
    ),
    "lists 100,000 deep": (
        lambda f: (f / "runs.json").write_text("[" * 100_000 + "]" * 100_000),
        "reports/pooling/runs.json: not JSON lab-cnn can read (",
    ),
    "runs.json a folder": (
        lambda f: [(f / "runs.json").unlink(), (f / "runs.json").mkdir()],
        "reports/pooling/runs.json: not a file of runs",
    ),
    "study.yaml 20,000 deep": (
        lambda f: (f / "study.yaml").write_text((f / "study.yaml").read_text() + "x: " + "[" * 20_000 + "]" * 20_000),
        SPEC + "not a study record lab-cnn can read (",
    ),
    "runs as a list": (
        lambda f: (f / "runs.json").write_text("[1, 2]"),
        "reports/pooling/runs.json: a list, not the runs by key",
    ),
    "seeds in quotes": (
        spec_change(lambda s: s.update(seeds="5")),
        SPEC + "seeds: '5' is not allowed; use a whole number",
    ),
    "seeds beyond the keys": (
        spec_change(lambda s: s.update(seeds=6)),
        SPEC + "comparisons.pooling.variants.max.keys: 5 different keys; seeds is 6",
    ),
    "a framework not known": (
        spec_change(lambda s: s["comparisons"][0].update(framework="jax")),
        SPEC + "comparisons.pooling.framework: 'jax'",
    ),
    "a comparison named a path": (
        spec_change(lambda s: s["comparisons"][0].update(name="../x")),
        SPEC + "comparisons[0].name: '../x' is not allowed",
    ),
    "two variants named max": (
        spec_change(lambda s: avg(s).update(name="max")),
        SPEC + "comparisons.pooling.variants: two variants are named 'max'",
    ),
    "an unknown key": (
        spec_change(lambda s: avg(s).update(overrides=[])),
        SPEC + "comparisons.pooling.variants.avg: unknown key 'overrides'",
    ),
    "config and keras": (
        spec_change(lambda s: avg(s).update(keras={"activation": "relu"})),
        SPEC + "comparisons.pooling.variants.avg: give either config",
    ),
    "documented nowhere": (
        spec_change(lambda s: avg(s).update(documented="pytorch.x")),
        SPEC + "comparisons.pooling.variants.avg.documented: 'pytorch.x' is not in",
    ),
    "two variants' keys swapped": (
        spec_change(
            lambda s: [
                v.update(keys=k)
                for v, k in zip(
                    s["comparisons"][0]["variants"], [avg(s)["keys"], s["comparisons"][0]["variants"][0]["keys"]]
                )
            ]
        ),
        f"reports/pooling/runs.json: entry '{POOLING_AVG}': seed 1, run 'lab-cnn fit --config configs/avgpool.yaml'; "
        "reports/pooling/study.yaml files it as pooling/max seed 1 (lab-cnn fit --config configs/baseline.yaml)",
    ),
    "a run of seed 2 filed as seed 1": (
        run_field("seed", 2),
        f"reports/pooling/runs.json: entry '{POOLING_AVG}': seed 2, run 'lab-cnn fit --config configs/avgpool.yaml'; "
        "reports/pooling/study.yaml files it as pooling/avg seed 1",
    ),
    "documented a branch": (
        spec_change(lambda s: avg(s).update(documented="pytorch.pooling_study")),
        SPEC + "comparisons.pooling.variants.avg.documented: 'pytorch.pooling_study' in documented_results.yaml is "
        "not a variant's figures",
    ),
    "documented a number": (
        spec_change(lambda s: avg(s).update(documented="pytorch.pooling_study.avg.test_loss")),
        SPEC + "comparisons.pooling.variants.avg.documented: 'pytorch.pooling_study.avg.test_loss' in",
    ),
    "documented another framework's": (
        spec_change(lambda s: avg(s).update(documented="keras.activation_study.relu")),
        SPEC + "comparisons.pooling.variants.avg.documented: 'keras.activation_study.relu' are the lab's keras figures",
    ),
    "expect_best not a variant": (
        spec_change(lambda s: s["comparisons"][0].update(expect_best="min")),
        SPEC + "comparisons.pooling.expect_best: 'min'",
    ),
    "no comparisons": (
        spec_change(lambda s: s.update(comparisons=[])),
        SPEC + "comparisons: [] is not allowed; give a list of comparisons",
    ),
    "a YAML key twice": (
        lambda f: (f / "study.yaml").write_text(
            (f / "study.yaml").read_text().replace("seeds: 5\n", "seeds: 5\nseeds: 6\n")
        ),
        SPEC + "not valid YAML (line 5, column 1: the key 'seeds' is given twice)",
    ),
    "seeds in base 8": (  # YAML 1.1 reads 010 as 8
        lambda f: (f / "study.yaml").write_text((f / "study.yaml").read_text().replace("seeds: 5\n", "seeds: 010\n")),
        SPEC + "not a study record lab-cnn can read (line 4, column 8: YAML reads 010 in base 8, as 8",
    ),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_hand_edited_record_is_one_line_naming_the_file_and_the_entry_and_nothing_is_rewritten(
    damage: str, tmp_path
) -> None:
    cwd = clone(tmp_path, "pooling")
    folder = cwd / "reports/pooling"
    edit, says = DAMAGES[damage]
    edit(folder)
    before = files(cwd)
    line = one_line_error(run_in_process("report", "reports/pooling", cwd=cwd))
    assert line.startswith(f"lab-cnn: error: {says}"), line
    assert files(cwd) == before


@pytest.mark.parametrize("damage", ["truncated JSON", "test_acc NaN", "no seeds"])
def test_a_study_refuses_a_hand_edited_record_before_it_runs_anything(damage: str, tmp_path) -> None:
    cwd = clone(tmp_path, "pooling")
    edit, says = DAMAGES[damage]
    edit(cwd / "reports/pooling")
    before = files(cwd)
    line = one_line_error(run("study", "configs/studies/pooling.yaml", "--data-dir", str(DATA_DIR), cwd=cwd))
    assert line.startswith(f"lab-cnn: error: {says}"), line
    assert files(cwd) == before


def test_a_study_refuses_an_edited_record_of_a_finished_run_in_lightning_logs(tmp_path) -> None:
    """Not in the issue: a run missing from runs.json is taken from its run folder's record, checked the same."""
    cwd = clone(tmp_path, "pooling")
    folder = cwd / "reports/pooling"
    edit_runs(folder, lambda runs: runs.pop(POOLING_AVG))
    record = json.loads((REPO / "reports/pooling/runs.json").read_text())[POOLING_AVG] | {"test_acc": "93.22"}
    done = cwd / "lightning_logs/studies" / POOLING_AVG / "version_0/study_run.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps(record))
    before = files(cwd)
    line = one_line_error(run("study", "configs/studies/pooling.yaml", "--data-dir", str(DATA_DIR), cwd=cwd))
    assert (
        line == f"lab-cnn: error: {done.relative_to(cwd)}: test_acc: '93.22' is not allowed; use a number in [0, 100]"
    )
    assert files(cwd) == before


def test_a_report_replaces_its_files_whole_and_writes_through_no_link(tmp_path) -> None:
    """Not in the issue: a plot that is a link to a file outside the report is replaced, not written through;
    a "$" in a title is a dollar sign (matplotlib would read TeX in it, and fail on half of it)."""
    cwd = clone(tmp_path, "pooling")
    folder = cwd / "reports/pooling"
    outside = tmp_path / "outside.txt"
    outside.write_text("a file of the user's")
    (folder / "pooling.png").unlink()
    (folder / "pooling.png").symlink_to(outside)
    edit_spec(folder, lambda s: s["comparisons"][0].update(title="Cost in $\\frac$"))
    page = report(folder, cwd)
    assert outside.read_text() == "a file of the user's"
    assert not (folder / "pooling.png").is_symlink() and (folder / "pooling.png").read_bytes().startswith(b"\x89PNG")
    assert "## Cost in $\\frac$" in page
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_file_the_report_cannot_write_is_one_line_naming_it_and_leaves_the_page_as_it_was(tmp_path) -> None:
    """Not in the issue: where the new page would be written first is a folder; report.md itself is a folder.
    The plot, written before the page, is older than a rebuild would make it: it too must stay as it was."""
    cwd = clone(tmp_path, "pooling")
    folder = cwd / "reports/pooling"
    (folder / ".report.md.tmp").mkdir()
    (folder / "pooling.png").write_bytes(b"an older plot")
    before = files(cwd)
    line = one_line_error(run_in_process("report", "reports/pooling", cwd=cwd))
    assert line == (
        "lab-cnn: error: reports/pooling/.report.md.tmp (the new report.md, before it replaces it): cannot be "
        "written (Is a directory)"
    ), line
    assert files(cwd) == before
    (folder / ".report.md.tmp").rmdir()
    (folder / "report.md").unlink()
    (folder / "report.md").mkdir()
    line = one_line_error(run_in_process("report", "reports/pooling", cwd=cwd))
    assert line == "lab-cnn: error: reports/pooling/report.md: cannot be replaced (Is a directory)", line
    assert not (folder / ".report.md.tmp").exists() and not (folder / ".pooling.png.tmp").exists()
    assert (folder / "pooling.png").read_bytes() == b"an older plot"
