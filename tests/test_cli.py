"""The ``lab-cnn`` / ``lightning`` commands, run for real: configs, errors, logs, checkpoints."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import pytest
import torch

from lab_cnn.cli import lightning_cli, main, summary_command
from lab_cnn.documented import documented
from lab_cnn.summary import total_params

from conftest import CONFIGS, REPO, fit_args, run, scalars

ALL_CONFIGS = sorted(p.name for p in CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_every_config_passes_fast_dev_run(config: str, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    main(fit_args(config, "--trainer.fast_dev_run", "true", "--trainer.enable_progress_bar", "false"))
    assert "Test set: Average loss:" in capsys.readouterr().out


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_fit_builds_the_model_that_summary_describes(config: str, capsys) -> None:
    """A config's model class gets only its own defaults (no knob carried over from another class)."""
    summary_command(["--config", str(CONFIGS / config)])
    total = int(re.search(r"Total params: ([\d,]+)", capsys.readouterr().out).group(1).replace(",", ""))
    model = lightning_cli(["--config", str(CONFIGS / config), "--data.data_dir", str(REPO / "data")], run=False).model
    assert total_params(model.net) == total
    keras = documented()["keras"]["summaries"]
    if config.startswith("keras_"):
        assert total == keras["one_conv" if "one_conv" in config else "two_conv"]["total_params"]


def test_bf16_mixed_precision_runs_on_the_cpu(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    main(fit_args("baseline.yaml", "--trainer.fast_dev_run", "2", "--trainer.precision", "bf16-mixed"))
    assert "Test set: Average loss:" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given on a machine without a GPU")
def test_gpu_config_without_a_gpu_stops_with_a_clear_message(tmp_path) -> None:
    result = run(*fit_args("baseline.yaml", "--config", str(CONFIGS / "trainer" / "gpu.yaml")), cwd=tmp_path)
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr and "Traceback" not in result.stderr


def test_summary_command_prints_shapes_and_total() -> None:
    result = run("summary", "--config", str(CONFIGS / "fc25.yaml"), cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "fc1 (Linear)" in result.stdout and "(25,)" in result.stdout
    assert "Total params: 13,565" in result.stdout


def test_lightning_command_runs_a_config_as_written(tmp_path) -> None:
    lightning = Path(sys.executable).with_name("lightning")
    import subprocess

    result = subprocess.run(
        [str(lightning), *fit_args("avgpool.yaml", "--trainer.fast_dev_run", "true")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Test set: Average loss:" in result.stdout


def test_fit_logs_checkpoints_and_test_reproduces_from_last_ckpt(tmp_path) -> None:
    fit = run(*fit_args("baseline.yaml", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "40"), cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    [line] = [l for l in fit.stdout.splitlines() if l.startswith("Test set:")]
    run_dir = tmp_path / "lightning_logs" / "baseline" / "version_0"
    assert {"config.yaml", "hparams.yaml"} <= {p.name for p in run_dir.iterdir()}
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()

    logged = scalars(run_dir)
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert len(logged[tag]) == 2, tag
    assert logged["train/acc"][1] > logged["train/acc"][0] > 0.1
    assert len(logged["test/acc"]) == 1
    assert f"({100 * logged['test/acc'][0]:.0f}%)" in line and f"{logged['test/loss'][0]:.4f}" in line

    again = run("test", "--config", str(CONFIGS / "baseline.yaml"), "--data.data_dir", str(REPO / "data"),
                "--ckpt_path", str(ckpt), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert line in again.stdout.splitlines()

    predict = run("predict", "--config", str(CONFIGS / "baseline.yaml"), "--data.data_dir", str(REPO / "data"),
                  "--ckpt_path", str(ckpt), cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr
    rows = list(csv.DictReader(open(next((tmp_path / "lightning_logs").rglob("predictions.csv")))))
    assert len(rows) == 10_000
    correct = sum(r["label"] == r["digit"] for r in rows)
    assert f"Accuracy: {correct}/10000" in line
