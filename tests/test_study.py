"""``lab-cnn study`` and ``lab-cnn report``: a tiny study of both frameworks, run for real; reports that
rebuild from their committed data; verdicts from Welch's t-test."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import yaml
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.util import tensor_util

from lab_cnn.documented import documented
from lab_cnn.errors import UserError
from lab_cnn.studies.report import verdict, welch
from lab_cnn.studies.study import Comparison, Variant, load_study
from tests.helpers import CONFIGS, DATA_DIR, REPO, run, run_in_process, terminal_job

LAB_TEST_ACC = {"fc50": 96.60, "fc25": 96.24, "two_conv": 97.45, "one_conv": 97.73}  # documented_results.yaml, in %
TINY = Path("reports") / "tiny-1epochs-3batches"  # the tiny study's own folder: its settings are not the file's


def tiny_study(folder: Path, **variants: dict) -> Path:
    """A study file in ``folder``; without ``variants``, two lab-cnn and two Keras variants."""
    pytorch = variants or {
        "fc50": {"config": str(CONFIGS / "baseline.yaml"), "documented": "pytorch.neuron_study.fc50"},
        "fc25": {
            "config": str(CONFIGS / "baseline.yaml"),
            "args": ["--model.init_args.hidden_units=25"],
            "documented": "pytorch.neuron_study.fc25",
        },
    }
    comparisons = {
        "neurons": {
            "title": "PyTorch: neurons",
            "framework": "pytorch",
            "claim": "50 beat 25",
            "expect_best": next(iter(pytorch)),
            "variants": pytorch,
        }
    }
    if not variants:
        comparisons["conv"] = {
            "title": "Keras: conv blocks",
            "framework": "keras",
            "claim": "one beats two",
            "expect_best": "one_conv",
            "variants": {
                "two_conv": {
                    "keras": {"activation": "relu", "conv_layers": 2},
                    "documented": "keras.conv_layer_study.two_conv",
                },
                "one_conv": {
                    "keras": {"activation": "relu", "conv_layers": 1},
                    "documented": "keras.conv_layer_study.one_conv",
                },
            },
        }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "epochs": 1, "comparisons": comparisons}))
    return path


def study(folder: Path, *extra: str):
    return run(
        "study",
        str(folder / "tiny.yaml"),
        "--limit-batches",
        "3",
        "--data-dir",
        str(DATA_DIR),
        *extra,
        cwd=folder,
        timeout=900,
    )


def logged(run_dir: Path, tag: str) -> float:
    """A tag's last value as the run wrote it, read independently of lab_cnn.studies.study."""
    mux = EventMultiplexer({"run": str(run_dir)})
    mux.Reload()
    acc = mux.GetAccumulator("run")
    if tag in acc.Tags()["scalars"]:
        return acc.Scalars(tag)[-1].value
    return tensor_util.make_ndarray(acc.Tensors(tag)[-1].tensor_proto).item()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("study")
    tiny_study(folder)
    result = study(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder, result.stdout


def row(report: str, variant: str) -> list[str]:
    """The cells of a variant's row in the first table that has it."""
    line = next(line for line in report.splitlines() if line.startswith(f"| {variant} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_a_tiny_study_writes_the_report_plots_and_runs_with_the_measured_numbers(tiny) -> None:
    folder, stdout = tiny
    # a start and an end line each, in the order the runs go (two at a time here)
    assert sorted(re.findall(r"\[\d/4\]", stdout)) == sorted([f"[{i}/4]" for i in range(1, 5)] * 2)
    report = (folder / TINY / "report.md").read_text()
    for png in ("neurons.png", "conv.png"):
        assert (folder / TINY / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report
    params = {
        **documented()["pytorch"]["params"],
        "two_conv": documented()["keras"]["summaries"]["two_conv"]["total_params"],
        "one_conv": documented()["keras"]["summaries"]["one_conv"]["total_params"],
    }
    recorded = json.loads((folder / TINY / "runs.json").read_text())
    spec = yaml.safe_load((folder / TINY / "study.yaml").read_text())
    keys = {v["name"]: v["keys"][0] for c in spec["comparisons"] for v in c["variants"]}
    for variant, lab in LAB_TEST_ACC.items():
        run_dir = next((folder / "lightning_logs").glob(f"**/{keys[variant]}/version_0"))
        measured = 100 * logged(run_dir, "test/acc")
        cells = row(report, variant)
        assert recorded[keys[variant]]["test_acc"] == pytest.approx(measured)
        assert cells[1] == f"{measured:.2f}"
        assert cells[2] == f"{lab:.2f}"
        assert cells[3] == f"above {int(lab > measured)} of 1"
        assert float(cells[4]) == pytest.approx(measured - lab, abs=0.006)
        assert cells[7] == f"{params[variant]:,}"
        assert float(cells[8]) >= 0
    # what was run, stated: lab-cnn tested 3 batches of 128 images, Keras all 10,000
    assert (
        "percent of the test images each run was tested on: 384 for the lab-cnn runs, 10,000 for the Keras runs"
        in report
    )
    assert "1 epoch(s), 3 batches per stage" in report
    assert "loss of the last batch of each epoch, not the epoch mean" in report  # the note under the PyTorch tables
    assert "one seed: no spread to judge" in report


def test_a_report_rebuilds_byte_for_byte_from_its_folder_alone(tiny, tmp_path) -> None:
    """What a fresh clone has: the report folder, no lightning_logs/."""
    folder, _ = tiny
    shutil.copytree(folder / TINY, tmp_path / TINY)
    (tmp_path / TINY / "report.md").unlink()
    rebuilt = run("report", str(TINY), cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (tmp_path / TINY / "report.md").read_bytes() == (folder / TINY / "report.md").read_bytes()


@pytest.mark.parametrize("report", sorted(p.parent.name for p in (REPO / "reports").glob("*/runs.json")))
def test_each_committed_report_rebuilds_byte_for_byte_on_a_fresh_clone(report: str, tmp_path) -> None:
    shutil.copytree(REPO / "reports" / report, tmp_path / "reports" / report)
    result = run("report", f"reports/{report}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "reports" / report / "report.md").read_bytes() == (
        REPO / "reports" / report / "report.md"
    ).read_bytes()


def test_a_finished_study_is_not_rerun_and_other_settings_never_replace_its_report(tiny) -> None:
    folder, _ = tiny
    versions = sorted(folder.glob("lightning_logs/**/version_*"))
    report = (folder / TINY / "report.md").read_bytes()
    again = study(folder)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished before, not rerun") == 4
    assert sorted(folder.glob("lightning_logs/**/version_*")) == versions
    refused = study(folder, "--epochs", "2", "--out", str(TINY))
    assert (
        refused.returncode == 2 and "holds a study of 1 epochs, limit_batches 3; this one has 2 and 3" in refused.stderr
    )
    assert (folder / TINY / "report.md").read_bytes() == report


def test_a_failing_variant_is_reported_and_the_others_finish_and_force_reruns(tmp_path) -> None:
    good = {"config": str(CONFIGS / "baseline.yaml"), "args": ["--model.init_args.hidden_units=10"]}
    bad = {"config": str(CONFIGS / "baseline.yaml"), "args": ["--model.lr=1e6"]}  # found only by training
    tiny_study(tmp_path, bad=bad, good=good)
    first = study(tmp_path)
    assert first.returncode == 2
    assert "[1/2] neurons/bad seed 1: FAILED" in first.stdout and "training diverged" in first.stdout
    assert "[2/2] neurons/good seed 1: done" in first.stdout
    assert first.stderr.strip().splitlines()[-1].startswith("lab-cnn: error: 1 runs failed (neurons/bad seed 1")
    report = (tmp_path / TINY / "report.md").read_text()
    assert row(report, "bad")[1] == "no finished run"
    assert "## Failed runs" in report
    forced = study(tmp_path, "--force")
    assert "[2/2] neurons/good seed 1: done" in forced.stdout
    assert len(list(tmp_path.glob("lightning_logs/studies/*hidden_units=10*/version_*"))) == 2


def test_what_a_killed_study_left_of_a_run_is_removed_and_the_run_made_once(tmp_path) -> None:
    """A study killed outright (SIGKILL, a machine gone) cleans up nothing: the run it was making has a folder
    without its end mark and no record. The same command removes that folder and makes the run again."""
    tiny_study(tmp_path, only={"config": str(CONFIGS / "baseline.yaml")})
    assert study(tmp_path).returncode == 0
    [run_dir] = tmp_path.glob("lightning_logs/studies/*/version_0")
    (run_dir / "study_run.json").unlink()  # as the killed study left it: no end mark ...
    (tmp_path / TINY / "runs.json").write_text("{}\n")  # ... and no record
    again = study(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "1 run(s) to make" in again.stdout
    assert [p.name for p in run_dir.parent.iterdir()] == ["version_0"] and (run_dir / "study_run.json").is_file()
    assert len(json.loads((tmp_path / TINY / "runs.json").read_text())) == 1


def test_a_second_study_into_a_report_being_made_is_refused_in_one_line(tmp_path) -> None:
    import fcntl

    tiny_study(tmp_path, only={"config": str(CONFIGS / "baseline.yaml")})
    (tmp_path / TINY).mkdir(parents=True)
    held = os.open(tmp_path / TINY, os.O_RDONLY)  # as the study making it holds it
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        refused = study(tmp_path)
    finally:
        os.close(held)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        f"lab-cnn: error: {TINY}: another study is making this report's runs now; wait until it ends"
    )
    assert not list((tmp_path / TINY).iterdir()) and not (tmp_path / "lightning_logs").exists()


def test_study_file_mistakes_are_one_line_errors(tmp_path) -> None:
    def mistake(spec: dict) -> str:
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(spec))
        with pytest.raises(UserError) as error:
            load_study(path)
        return str(error.value)

    ok = {"config": str(CONFIGS / "baseline.yaml")}
    assert "framework" in mistake({"comparisons": {"c": {"framework": "jax", "variants": {"a": ok}}}})
    assert "either 'config'" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {**ok, "keras": {}}}}}}
    )
    assert "unknown key 'overrides'" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {**ok, "overrides": []}}}}}
    )
    assert "nope.yaml not found" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {"config": "nope.yaml"}}}}}
    )
    assert "not in documented_results.yaml" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {**ok, "documented": "pytorch.x"}}}}}
    )
    assert "expect_best: 'b'" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "expect_best": "b", "variants": {"a": ok}}}}
    )
    fine = {"comparisons": {"c": {"framework": "pytorch", "variants": {"a": ok}}}}
    assert "include: 5 is not allowed; give a list" in mistake({**fine, "include": 5})
    assert "comparisons: ['a'] is not allowed; give keys and values" in mistake({"comparisons": ["a"]})
    assert "variants.a: 5 is not allowed; give keys and values" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "variants": {"a": 5}}}}
    )
    assert "variants.a.args: 5 is not allowed; give a list" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {**ok, "args": 5}}}}}
    )
    assert "variants.a.config: ['x'] is not allowed; give a text" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {"config": ["x"]}}}}}
    )
    assert "variants.a.documented: 5 is not allowed; give a text" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {**ok, "documented": 5}}}}}
    )
    assert "name: '../x' is not allowed; use a folder name inside reports/" in mistake({**fine, "name": "../x"})
    assert "includes itself" in mistake({**fine, "include": ["s.yaml"]})
    # not in the issue: keys of no meaning, texts that are not, names of folders inside another report
    assert "s.yaml: unknown key 'epoch'; use name, epochs" in mistake({**fine, "epoch": 1})
    assert "comparisons.c: unknown key 'titel'" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "titel": "t", "variants": {"a": ok}}}}
    )
    assert "comparisons.c.title: '' is not allowed; use a text" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "title": "", "variants": {"a": ok}}}}
    )
    assert "comparisons.c.title: [1, 2] is not allowed" in mistake(
        {"comparisons": {"c": {"framework": "pytorch", "title": [1, 2], "variants": {"a": ok}}}}
    )
    assert "name: 'lab/x' is not allowed; use one folder name inside reports/" in mistake({**fine, "name": "lab/x"})
    assert "name: '   ' is not allowed" in mistake({**fine, "name": "   "})
    for branch in ("pytorch", "pytorch.pooling_study", "pytorch.pooling_study.max.test_loss", "pytorch.params.fc50"):
        assert f"documented: {branch!r} in documented_results.yaml is not a variant's figures" in mistake(
            {"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {**ok, "documented": branch}}}}}
        )
    keras_figures = {**ok, "documented": "keras.activation_study.relu"}
    assert "documented: 'keras.activation_study.relu' are the lab's keras figures; the comparison's framework is" in (
        mistake({"comparisons": {"c": {"framework": "pytorch", "variants": {"a": keras_figures}}}})
    )
    missing = run("study", "no-such-study.yaml", cwd=tmp_path)
    assert (
        missing.returncode == 2 and missing.stderr.strip() == "lab-cnn: error: no-such-study.yaml: study file not found"
    )


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ({"args": ["--model.hiden_units=10"]}, "narrow: model.hiden_units: unknown key; did you mean model.hidden"),
        ({"args": ["--model.hidden_units", "ten"]}, "narrow: model.hidden_units: 'ten' is not allowed"),
        ({"args": ["--data.batch_size=0"]}, "narrow: data.batch_size: 0 is not allowed"),
        ({"args": ["--seed_everything=4"]}, "narrow: args: --seed_everything is the study's to set for every run"),
        ({"args": ["--trainer.max_epochs", "3"]}, "narrow: args: --trainer.max_epochs is the study's to set"),
        ({"keras": {"conv_layerz": 1}}, "narrow: keras.conv_layerz: not a setting of a variant; use activation, "),
        ({"keras": {"epochs": 3}}, "narrow: keras.epochs: not a setting of a variant"),
        ({"keras": {"activation": "swish"}}, "narrow: keras.activation: invalid choice: 'swish'"),  # as written
        ({"keras": {"conv_layers": 0}}, "narrow: keras.conv_layers: '0' is not allowed"),
        ({"keras": {"batch_size": -3}}, "narrow: keras.batch_size: '-3' is not allowed"),
        ({"keras": {"batch_size": 2**64}}, f"narrow: keras.batch_size: '{2**64}' is not allowed; use a whole number"),
        ({"keras": {"conv_layers": 9}}, "narrow: conv2d_3: a 3x3 kernel does not fit its 1x1 input"),
        (
            {"args": ["--trainer={max_epochs: 5}"]},
            "narrow: args: --trainer gives the whole of trainer, which holds the",
        ),
        (
            {"args": ["--data", "{seed: 3}"]},
            "narrow: args: --data gives the whole of data, which holds the study's data_",
        ),
        ({"args": ["--print_config"]}, "narrow: args: --print_config ends the command instead of making a run"),
        ({"args": ["--help"]}, "narrow: args: --help ends the command instead of making a run"),
    ],
)
def test_a_variants_mistake_is_one_line_before_any_run(variant: dict, expected: str, tmp_path) -> None:
    """Found before the runs start, naming the variant (was: every run of it failed, one after another)."""
    options = {"config": str(CONFIGS / "baseline.yaml"), **variant} if "args" in variant else variant
    path = tiny_study(tmp_path, wide={"config": str(CONFIGS / "baseline.yaml")}, narrow=options)
    refused = run_in_process("study", str(path), "--data-dir", str(DATA_DIR), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith(f"lab-cnn: error: {path}: comparisons.neurons.variants.{expected}")
    assert refused.stderr.count("\n") == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_shipped_studies_load_and_lab_yaml_holds_all_four_comparisons_of_the_lab() -> None:
    studies = {p.stem: load_study(p) for p in (CONFIGS / "studies").glob("*.yaml")}
    assert set(studies) == {"activation", "conv_layers", "neurons", "pooling", "lab"}
    lab = {c.name for c in studies["lab"].comparisons}
    assert lab == {
        c.name for name in ("activation", "conv_layers", "neurons", "pooling") for c in studies[name].comparisons
    }
    keras_runs = {(c.name, v.name) for c in studies["lab"].comparisons for v in c.variants if v.keras is not None}
    assert {("keras_activation", "relu"), ("keras_conv_layers", "one_conv")} <= keras_runs


def test_welch_matches_a_published_example() -> None:
    """Wikipedia, "Welch's t-test", example 1: t = -2.46, about 24.9 degrees of freedom, p = 0.021."""
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    diff, low, high, p = welch(a1, a2)
    assert diff == pytest.approx(20.82 - 22.99, abs=0.01) and p == pytest.approx(0.021, abs=0.001)
    assert low < diff < high < 0  # the interval excludes 0, as p < 0.05 says


def results(**test_accs: list[float]) -> dict[str, list[dict]]:
    return {name: [{"test_acc": a} for a in accs] for name, accs in test_accs.items()}


def test_verdicts_follow_the_t_test() -> None:
    c = Comparison("c", "t", "pytorch", [Variant("max"), Variant("avg")], claim="max beats avg", expect_best="max")
    supported = verdict(c, results(max=[97.0, 97.2, 97.1], avg=[93.0, 93.4, 93.2]))[1]
    assert re.fullmatch(
        r"supported \(difference \+3\.90 points, 95% CI \[\+3\.\d\d, \+4\.\d\d\], p < 0\.001\)", supported
    )
    assert verdict(c, results(max=[97.0, 96.0, 98.0], avg=[96.5, 97.5, 96.9]))[1].startswith(
        "not supported at 3 seeds (difference"
    )
    assert verdict(c, results(max=[93.0, 93.1, 93.3], avg=[97.0, 97.1, 96.8]))[1].startswith(
        "contradicted (difference -"
    )
    assert "one seed" in verdict(c, results(max=[97.0], avg=[93.0]))[1]
    alone = Comparison("c", "t", "pytorch", [Variant("max")], claim="max is best", expect_best="max")
    assert verdict(alone, results(max=[97.0, 97.2]))[1] == "cannot tell: one variant, nothing to compare it with"
    three = Comparison(
        "c", "t", "keras", [Variant("relu"), Variant("tanh"), Variant("sigmoid")], claim="relu best", expect_best="relu"
    )
    mixed = verdict(three, results(relu=[97.3, 97.4, 97.2], tanh=[96.0, 96.1, 95.9], sigmoid=[97.2, 97.5, 97.1]))[1]
    assert (
        mixed.startswith("not supported at 3 seeds (vs tanh: difference +1.30")
        and "; vs sigmoid: difference +0.03" in mixed
    )


def test_ctrl_c_stops_a_study_in_one_line_and_leaves_no_unfinished_run(tmp_path) -> None:
    path = tiny_study(tmp_path, slow={"config": str(CONFIGS / "baseline.yaml")})
    path.write_text(path.read_text().replace("epochs: 1", "epochs: 5"))  # long enough to be interrupted
    process = terminal_job(
        [sys.executable, "-m", "lab_cnn", "study", "tiny.yaml", "--data-dir", str(DATA_DIR)], tmp_path
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("lightning_logs/studies/*/version_0/events.*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # well into training
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        "lab-cnn: interrupted; no run had finished; the same command goes on from there"
    )
    assert not list(tmp_path.glob("lightning_logs/studies/*/version_*"))  # the unfinished run is gone
    assert not list(tmp_path.glob("reports/*/logs/*.log")) and not list(tmp_path.glob("reports/*/runs.json"))


def forkserver(study: subprocess.Popen) -> psutil.Process | None:
    """The warm server of a study's workers, once started."""
    for child in psutil.Process(study.pid).children():
        with contextlib.suppress(psutil.Error):  # one that has just ended
            if "forkserver" in " ".join(child.cmdline()):
                return child
    return None


def reading_fork(study: subprocess.Popen, folder: Path) -> psutil.Process | None:
    """The warm server's fork reading the variants' options (named so for ps; not the fork that only says the
    server is ready, nor a run's), while no report folder is there (the study makes it to make its runs)."""
    for fork in (server := forkserver(study)) and server.children() or []:
        with contextlib.suppress(psutil.Error):
            if fork.name() == "lab-cnn-check" and fork.status() != psutil.STATUS_ZOMBIE:
                return None if (folder / "reports").exists() else fork
    return None


def assert_no_process_left(study: subprocess.Popen) -> None:
    """Within 10 s of its end, a study's process group is empty: no server, run or tracker left."""
    deadline = time.monotonic() + 10
    with pytest.raises(ProcessLookupError):
        while time.monotonic() < deadline:
            os.killpg(study.pid, 0)
            time.sleep(0.2)


def many_variants(folder: Path) -> None:
    """A tiny study of 16 variants, whose options the reading fork takes seconds to read (two took 0.5 s): time
    for a test to find it at work."""
    baseline = str(CONFIGS / "baseline.yaml")
    variants = {f"fc{n}": {"config": baseline, "args": [f"--model.hidden_units={n}"]} for n in range(10, 90, 5)}
    tiny_study(folder, **variants)


def wait_for(ready: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert time.monotonic() < deadline, f"no {what}"
        time.sleep(0.01)


@pytest.mark.parametrize(
    "moment",
    [
        "as its warm server imports",
        "as it reads its variants' options",
        "as its runs start, twice",
        "as it leaves, its report written",
    ],
)
def test_ctrl_c_at_any_moment_of_a_study_prints_one_line_and_leaves_no_process(tmp_path, moment) -> None:
    """Ctrl-C in a terminal reaches every process of the study (the server, the runs): none of them but the
    study may print, and none may outlive it. Found: the server's traceback of an import, a run's of its job,
    the traceback of the fork reading the variants' options, its answer finding the pipe closed (a race: one
    in three tries by hand), and a study killed by SIGINT with no line as it left, its report written."""
    baseline = str(CONFIGS / "baseline.yaml")
    fc25 = {"config": baseline, "args": ["--model.init_args.hidden_units=25"]}
    if moment == "as it reads its variants' options":
        many_variants(tmp_path)
    else:
        tiny_study(tmp_path, fc50={"config": baseline}, fc25=fc25)
    short = ["--limit-batches", "2"] if moment.endswith("written") else []
    argv = [sys.executable, "-m", "lab_cnn", "study", "tiny.yaml", "--data-dir", str(DATA_DIR), "--workers", "2"]
    process = terminal_job([*argv, *short], tmp_path)
    assert process.stdout is not None
    expected = "lab-cnn: interrupted"
    if moment == "as its warm server imports":  # torch loaded in it: Lightning's import follows, for seconds
        wait_for(
            lambda: (
                (server := forkserver(process)) and "libtorch_cpu.so" in Path(f"/proc/{server.pid}/maps").read_text()
            ),
            "warm server importing torch",
        )
    elif moment == "as it reads its variants' options":
        wait_for(lambda: reading_fork(process, tmp_path), "fork of the warm server reading the options")
    else:
        awaited = "Report: " if moment.endswith("written") else ": running "
        while awaited not in (line := process.stdout.readline()):
            assert line, "the study ended first"
        expected += "; no run had finished; the same command goes on from there"
    os.killpg(process.pid, signal.SIGINT)
    if moment.endswith("twice"):
        time.sleep(0.05)  # as it stops
        os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)  # once every process holding its output has ended
    if moment.endswith("written"):  # nothing left to stop once it returns; just before, it is interrupted
        assert (process.returncode, stderr) in ((0, ""), (130, "lab-cnn: interrupted\n")), (process.returncode, stderr)
    else:
        assert process.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
        assert stderr.strip().splitlines() == [expected]
    assert_no_process_left(process)


def test_a_study_whose_warm_server_is_killed_as_it_starts_says_so_in_one_line(tmp_path) -> None:
    """SIGKILL of the warm server in its imports: one line, exit 2 (was: an EOFError traceback). Killed once it
    holds torch's libraries (100 MB; its imports take seconds more): the study has asked it for its first fork by
    then. (Killed before, multiprocessing starts a server again for that fork, and the study goes on.)"""
    tiny_study(tmp_path, fc50={"config": str(CONFIGS / "baseline.yaml")})
    argv = [sys.executable, "-m", "lab_cnn", "study", "tiny.yaml", "--data-dir", str(DATA_DIR), "--workers", "2"]
    process = terminal_job(argv, tmp_path)
    wait_for(lambda: (server := forkserver(process)) and server.memory_info().rss > 100 * 2**20, "warm server")
    server = forkserver(process)
    assert server is not None and not server.children(), "the server's imports ended before it was killed"
    server.kill()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and "Traceback" not in stderr, stderr[-3000:]
    assert stderr.strip().splitlines() == [
        "lab-cnn: error: the study's warm server ended as it started (killed?); run the same command again"
    ]


def test_a_study_whose_reading_of_its_options_is_killed_says_so_in_one_line_and_writes_nothing(tmp_path) -> None:
    """SIGKILL of the warm server's fork reading the variants' options (as the kernel's out-of-memory killer
    would): one line, exit 2, no report folder, and no process of the study left."""
    many_variants(tmp_path)
    argv = [sys.executable, "-m", "lab_cnn", "study", "tiny.yaml", "--data-dir", str(DATA_DIR), "--workers", "2"]
    process = terminal_job(argv, tmp_path)
    wait_for(lambda: reading_fork(process, tmp_path), "fork of the warm server reading the options")
    fork = reading_fork(process, tmp_path)
    assert fork is not None
    fork.kill()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and stderr.strip().splitlines() == [
        "lab-cnn: error: reading tiny.yaml's commands failed: the process reading them ended (killed by SIGKILL)"
    ], stderr[-3000:]
    assert not (tmp_path / "reports").exists()
    assert_no_process_left(process)


def test_the_time_left_counts_each_run_as_its_own_variants_runs_took(monkeypatch, capsys, tmp_path) -> None:
    """A Keras run takes ten times a lab-cnn run: the estimate of what is left is made per variant."""
    import lab_cnn.studies.study as study_module

    now = [0.0]
    monkeypatch.setattr(study_module.time, "time", lambda: now[0])
    lab, keras = Variant("lab", config="configs/baseline.yaml"), Variant("keras", keras={"activation": "relu"})
    jobs = {
        (v.name, s): study_module.Job(f"{v.name} {s}", f"{v.name} {s}", v, f"{v.name}-s{s}", s, tmp_path / "log")
        for v in (lab, keras)
        for s in (1, 2)
    }
    progress = study_module.Progress(list(jobs.values()), workers=2)

    def at(seconds: float, *events: tuple[str, tuple[str, int]]) -> str:
        now[0] = seconds
        for what, job in events:
            progress.start(jobs[job], "worker") if what == "start" else progress.end(jobs[job], "done")
        return [line for line in capsys.readouterr().out.splitlines() if " done, " in line][-1]  # the last end's

    progress.start(jobs["lab", 1], "worker")
    progress.start(jobs["keras", 1], "worker")
    # lab 1 took 10 s, the only time known: lab 2 and keras 2 10 s each, keras 1 (10 s in) done: 20 s for 2
    assert at(10, ("end", ("lab", 1)), ("start", ("lab", 2))).endswith("(1/4 done, 1 going, about 0.2 min left)")
    assert at(20, ("end", ("lab", 2))).endswith("(2/4 done, 1 going, about 0.1 min left)")
    # keras 1 took 100 s: keras 2 is expected to take as long, not the 40 s of the mean of every run
    assert at(100, ("end", ("keras", 1))).endswith("(3/4 done, 0 going, about 1.7 min left)")
    assert at(130, ("start", ("keras", 2)), ("end", ("keras", 2))).endswith("(4/4 done, 0 going)")
