"""``lab-cnn study`` and ``lab-cnn report``: a tiny study of both frameworks, run for real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.util import tensor_util

from lab_cnn.documented import documented
from lab_cnn.errors import UserError
from lab_cnn.report import verdict
from lab_cnn.study import Comparison, Variant, load_study

from conftest import CONFIGS, DATA_DIR, run

LAB_TEST_ACC = {"fc50": 96.60, "fc25": 96.24, "two_conv": 97.45, "one_conv": 97.73}  # documented_results.yaml, in %


def tiny_study(folder: Path, **variants: dict) -> Path:
    """A study file in ``folder``; without ``variants``, two lab-cnn and two Keras variants."""
    pytorch = variants or {
        "fc50": {"config": str(CONFIGS / "baseline.yaml"), "documented": "pytorch.neuron_study.fc50"},
        "fc25": {"config": str(CONFIGS / "baseline.yaml"), "args": ["--model.init_args.hidden_units=25"],
                 "documented": "pytorch.neuron_study.fc25"},
    }
    comparisons = {"neurons": {"title": "PyTorch: neurons", "framework": "pytorch", "claim": "50 beat 25",
                               "expect_best": next(iter(pytorch)), "variants": pytorch}}
    if not variants:
        comparisons["conv"] = {"title": "Keras: conv blocks", "framework": "keras", "claim": "one beats two", "expect_best": "one_conv",
                               "variants": {"two_conv": {"keras": {"activation": "relu", "conv_layers": 2}, "documented": "keras.conv_layer_study.two_conv"},
                                            "one_conv": {"keras": {"activation": "relu", "conv_layers": 1}, "documented": "keras.conv_layer_study.one_conv"}}}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "epochs": 1, "comparisons": comparisons}))
    return path


def study(folder: Path, *extra: str):
    return run("study", str(folder / "tiny.yaml"), "--limit-batches", "3", "--data-dir", str(DATA_DIR), *extra, cwd=folder, timeout=900)


def logged_test_acc(run_dir: Path) -> float:
    """test/acc in % as the run wrote it, read independently of lab_cnn.report."""
    mux = EventMultiplexer({"run": str(run_dir)})
    mux.Reload()
    acc = mux.GetAccumulator("run")
    if "test/acc" in acc.Tags()["scalars"]:
        return 100 * acc.Scalars("test/acc")[-1].value
    return 100 * tensor_util.make_ndarray(acc.Tensors("test/acc")[-1].tensor_proto).item()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("study")
    tiny_study(folder)
    result = study(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder, result.stdout


def row(report: str, variant: str) -> list[str]:
    """The cells of a variant's row in the first table that has it."""
    line = next(l for l in report.splitlines() if l.startswith(f"| {variant} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_a_tiny_study_writes_the_report_and_plots_with_the_measured_numbers(tiny) -> None:
    folder, stdout = tiny
    assert [f"[{i}/4]" for i in range(1, 5)] == re.findall(r"\[\d/4\]", stdout)[::2]  # a start and an end line each
    report = (folder / "reports" / "tiny" / "report.md").read_text()
    for png in ("neurons.png", "conv.png"):
        assert (folder / "reports" / "tiny" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report
    params = {**{k: v for k, v in documented()["pytorch"]["params"].items()},
              "two_conv": documented()["keras"]["summaries"]["two_conv"]["total_params"],
              "one_conv": documented()["keras"]["summaries"]["one_conv"]["total_params"]}
    for variant, lab in LAB_TEST_ACC.items():
        cells = row(report, variant)
        run_dir = Path(cells[-1].strip("`"))
        measured = logged_test_acc(folder / run_dir)
        assert cells[1] == f"{measured:.2f}"
        assert cells[2] == f"{lab:.2f}"
        assert float(cells[3]) == pytest.approx(measured - lab, abs=0.006)
        assert cells[6] == f"{params[variant]:,}"
        assert float(cells[7]) >= 0
    assert "loss of the last batch of each epoch, not the epoch mean" in report  # the note under the PyTorch tables
    assert "one seed: no spread to judge" in report


def test_a_finished_study_is_not_rerun_and_its_report_rebuilds_from_the_logs_alone(tiny) -> None:
    folder, _ = tiny
    versions = sorted(folder.glob("lightning_logs/**/version_*"))
    report = folder / "reports" / "tiny" / "report.md"
    before = report.read_text()
    again = study(folder)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("finished before, not rerun") == 4
    assert sorted(folder.glob("lightning_logs/**/version_*")) == versions
    report.unlink()
    rebuilt = run("report", "reports/tiny", cwd=folder)
    assert rebuilt.returncode == 0, rebuilt.stderr
    strip_timing = lambda text: re.sub(r"finished .* of processes in all", "", text)  # noqa: E731
    assert strip_timing(report.read_text()) == strip_timing(before)


def test_a_failing_variant_is_reported_and_the_others_finish_and_force_reruns(tmp_path) -> None:
    good = {"config": str(CONFIGS / "baseline.yaml"), "args": ["--model.init_args.hidden_units=10"]}
    bad = {"config": str(CONFIGS / "baseline.yaml"), "args": ["--model.init_args.hidden_units=0"]}
    tiny_study(tmp_path, bad=bad, good=good)
    first = study(tmp_path)
    assert first.returncode == 2
    assert "[1/2] neurons/bad seed 1: FAILED" in first.stdout and "hidden_units: 0 is not allowed" in first.stdout
    assert "[2/2] neurons/good seed 1: done" in first.stdout
    assert first.stderr.strip().splitlines()[-1].startswith("lab-cnn: error: 1 of 2 runs failed (neurons/bad seed 1)")
    report = (tmp_path / "reports" / "tiny" / "report.md").read_text()
    assert row(report, "bad")[1] == "no finished run"
    assert "## Failed runs" in report
    forced = study(tmp_path, "--force")
    assert "[2/2] neurons/good seed 1: done" in forced.stdout
    assert len(list(tmp_path.glob("lightning_logs/studies/*hidden_units=10*/version_*"))) == 2


def test_study_file_mistakes_are_one_line_errors(tmp_path) -> None:
    def mistake(spec: dict) -> str:
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(spec))
        with pytest.raises(UserError) as error:
            load_study(path)
        return str(error.value)

    ok = {"config": str(CONFIGS / "baseline.yaml")}
    assert "framework" in mistake({"comparisons": {"c": {"framework": "jax", "variants": {"a": ok}}}})
    assert "either 'config'" in mistake({"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {**ok, "keras": {}}}}}})
    assert "unknown key 'overrides'" in mistake({"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {**ok, "overrides": []}}}}})
    assert "nope.yaml not found" in mistake({"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {"config": "nope.yaml"}}}}})
    assert "not in documented_results.yaml" in mistake({"comparisons": {"c": {"framework": "pytorch", "variants": {"a": {**ok, "documented": "pytorch.x"}}}}})
    assert "expect_best: 'b'" in mistake({"comparisons": {"c": {"framework": "pytorch", "expect_best": "b", "variants": {"a": ok}}}})
    missing = run("study", "no-such-study.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip() == "lab-cnn: error: no-such-study.yaml: study file not found"


def test_shipped_studies_load_and_lab_yaml_holds_all_four_comparisons_of_the_lab() -> None:
    studies = {p.stem: load_study(p) for p in (CONFIGS / "studies").glob("*.yaml")}
    assert set(studies) == {"activation", "conv_layers", "neurons", "pooling", "lab"}
    lab = {c.name for c in studies["lab"].comparisons}
    assert lab == {c.name for name in ("activation", "conv_layers", "neurons", "pooling") for c in studies[name].comparisons}
    keras_runs = {(c.name, v.name) for c in studies["lab"].comparisons for v in c.variants if v.keras is not None}
    assert {("keras_activation", "relu"), ("keras_conv_layers", "one_conv")} <= keras_runs


def results(**test_accs: list[float]) -> dict[str, list[dict]]:
    return {name: [{"test_acc": a} for a in accs] for name, accs in test_accs.items()}


def test_verdict_weighs_the_difference_against_the_seed_to_seed_spread() -> None:
    c = Comparison("c", "t", "pytorch", [Variant("max"), Variant("avg")], claim="max beats avg", expect_best="max")
    assert verdict(c, results(max=[97.0, 97.2, 97.1], avg=[93.0, 93.4, 93.2]))[1].startswith("holds beyond the seed-to-seed spread")
    assert verdict(c, results(max=[97.0, 96.0, 98.0], avg=[96.5, 97.5, 96.9]))[1].startswith("same direction, but within")
    assert verdict(c, results(max=[93.0, 93.1], avg=[97.0, 97.1]))[1].startswith("does not hold")
    assert "one seed" in verdict(c, results(max=[97.0], avg=[93.0]))[1]
