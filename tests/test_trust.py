"""Trust: one-line errors, interrupted runs, reproducibility, safe loading, concurrent runs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from lab_cnn import mnist

from conftest import CONFIGS, DATA_DIR, REPO, fit_args, run

SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "2",
         "--trainer.limit_test_batches", "2", "--inspect", "false", "--trainer.enable_progress_bar", "false"]


def one_line_error(result: subprocess.CompletedProcess, prog: str = "lab-cnn") -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [l for l in result.stderr.splitlines() if l.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch, capsys):
    """``lab-cnn ARGS`` called in this process (the same ``main`` the console script runs), in ``tmp_path``:
    a mistake must exit 2 with one line on stderr before anything is written."""
    from lab_cnn.cli import main

    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> subprocess.CompletedProcess:
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return call


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model.conv_channels", "[10, 0]"], "conv_channels: 0 is not allowed; use a whole number >= 1"),
        (["--model.kernel_size", "-3"], "kernel_size: -3 is not allowed"),
        (["--model.hidden_units", "2.5"], "model.hidden_units: '2.5' is not allowed"),
        (["--data.batch_size", "0"], "data.batch_size: 0 is not allowed"),
        (["--data.batch_size", "-1"], "data.batch_size: -1 is not allowed"),
        (["--model.kernel_siz", "3"], "model.kernel_siz: unknown key; did you mean model.kernel_size?"),
        (["--trainer.max_epochs", "0"], "trainer.max_epochs: 0 is not allowed"),
        (["--trainer.max_epochs", "1.5"], "trainer.max_epochs: '1.5' is not allowed; expected int"),
        (["--model.dropout", "1"], "dropout: 1.0 is not allowed; use a number in [0, 1)"),
        (["--model.activation", "swish"], "activation: 'swish' is not allowed; use one of relu, sigmoid"),
        (["--model.pool", "median"], "pool: 'median' is not allowed; use one of max, avg"),
        (["--model.kernel_size", "13"], "conv2: a 13x13 kernel does not fit its 8x8 input"),
        (["--trainer.max_epoch", "3"], "trainer.max_epoch: unknown key; did you mean trainer.max_epochs?"),
    ],
)
def test_bad_values_get_one_line_naming_key_value_and_allowed(args: list[str], expected: str, in_tmp) -> None:
    assert expected in one_line_error(in_tmp(*fit_args("baseline.yaml", *args)))
    assert not Path("lightning_logs").exists()


def test_bad_config_files_get_one_line(in_tmp) -> None:
    assert "nope.yaml: config file not found" in one_line_error(in_tmp("fit", "--config", "nope.yaml"))
    Path("broken.yaml").write_text("model: [unclosed\n")
    assert "broken.yaml: not valid YAML" in one_line_error(in_tmp("fit", "--config", "broken.yaml"))
    Path("typo.yaml").write_text("model:\n  class_path: lab_cnn.LabNet\n  init_args:\n    kernel_siz: 3\n")
    assert "did you mean model.kernel_size?" in one_line_error(in_tmp("fit", "--config", "typo.yaml"))
    assert not Path("lightning_logs").exists()


@pytest.mark.parametrize("damage", ["missing", "empty", "truncated", "corrupted"])
def test_bad_data_files_get_one_line(damage: str, tmp_path) -> None:
    raw = mnist.raw_dir(tmp_path / "data")
    shutil.copytree(mnist.raw_dir(DATA_DIR), raw)
    path = raw / "train-images-idx3-ubyte"
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes({"empty": b"", "truncated": data[:1000], "corrupted": data[:-1] + b"\x01"}[damage])
    # a missing file is fetched when a source answers; here pip finds no index, and torchvision's hosts
    # do not answer on this machine, so nothing can fetch it
    offline = {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}
    result = run(*fit_args("baseline.yaml", "--data.data_dir", str(tmp_path / "data")), cwd=tmp_path, env=offline)
    line = one_line_error(result)
    assert "train-images-idx3-ubyte" in line
    if damage == "missing":
        assert "no source gave verified MNIST files" in line and "by hand" in line
    else:
        assert mnist.MD5["train-images-idx3-ubyte"] in line and "lab-cnn data" in line
    assert not (tmp_path / "lightning_logs").exists()


def test_a_checkpoint_of_another_architecture_names_the_layer(tmp_path) -> None:
    assert run(*fit_args("baseline.yaml", *SHORT), cwd=tmp_path).returncode == 0
    ckpt = tmp_path / "lightning_logs/baseline/version_0/checkpoints/last.ckpt"
    result = run("test", "--config", str(CONFIGS / "wide.yaml"), "--data.data_dir", str(DATA_DIR), "--ckpt_path", str(ckpt),
                 cwd=tmp_path)
    assert "net.layers.conv1.weight is (10, 1, 5, 5) in the checkpoint and (20, 1, 5, 5) in the model" in one_line_error(result)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path) -> None:
    marker = tmp_path / "code-ran"
    crafted = tmp_path / "crafted.ckpt"
    subprocess.run([sys.executable, "-c", f"""
import os, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
torch.save({{"state_dict": {{}}, "payload": Payload()}}, "{crafted}")
"""], check=True)
    result = run("test", "--config", str(CONFIGS / "baseline.yaml"), "--data.data_dir", str(DATA_DIR),
                 "--ckpt_path", str(crafted), cwd=tmp_path)
    assert "refused" in one_line_error(result) and "could run code" in one_line_error(result)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--mode", "train", "--batch-size", "0"], "--batch-size: '0' is not allowed"),
        (["--mode", "train", "--conv-layers", "-1"], "--conv-layers: '-1' is not allowed"),
        (["--mode", "train", "--activation", "swish"], "invalid choice: 'swish'"),
        (["--mode", "train", "--epochs", "2.5"], "--epochs: '2.5' is not allowed"),
        (["--mode", "test", "--model_path", "nope.keras"], "nope.keras does not exist"),
        (["--mode", "train", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_keras_parity_mistakes_get_one_line(args: list[str], expected: str, tmp_path) -> None:
    assert expected in one_line_error(run(*args, cwd=tmp_path, command="keras_parity"), prog="keras-parity")


def test_keras_parity_refuses_a_file_that_is_not_a_keras_model(tmp_path) -> None:
    (tmp_path / "fake.keras").write_bytes(b"PK\x03\x04 not really a zip")
    result = run("--mode", "test", "--model_path", "fake.keras", "--data-dir", str(DATA_DIR), cwd=tmp_path, command="keras_parity")
    assert "fake.keras is not a readable Keras model" in one_line_error(result, prog="keras-parity")


def test_keras_parity_reports_a_damaged_data_file(tmp_path) -> None:
    raw = mnist.raw_dir(tmp_path / "data")
    shutil.copytree(mnist.raw_dir(DATA_DIR), raw)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"")
    result = run("--mode", "train", "--data-dir", str(tmp_path / "data"), cwd=tmp_path, command="keras_parity")
    assert "t10k-labels-idx1-ubyte: MD5" in one_line_error(result, prog="keras-parity")


def epoch_metrics(run_dir: Path) -> dict[str, list[float]]:
    mux = EventMultiplexer(size_guidance={"scalars": 0})
    mux.AddRunsFromDirectory(str(run_dir))
    mux.Reload()
    acc = mux.GetAccumulator(".")
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"] if "/" in tag}


def test_two_runs_of_a_config_give_identical_metrics(tmp_path) -> None:
    args = fit_args("baseline.yaml", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "30", "--inspect", "false",
                    "--trainer.limit_val_batches", "10", "--trainer.limit_test_batches", "10")
    first, second = (run(*args, cwd=tmp_path).stdout for _ in range(2))
    runs = tmp_path / "lightning_logs" / "baseline"
    assert epoch_metrics(runs / "version_0") == epoch_metrics(runs / "version_1")
    assert len(epoch_metrics(runs / "version_0")["train/acc"]) == 2
    assert re.search("Test set:.*", first).group() == re.search("Test set:.*", second).group()


RESUMABLE = fit_args("baseline.yaml", "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "150",
                     "--inspect", "false", "--trainer.enable_progress_bar", "false")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[str, Path]:
    """The Test line and run folder of an uninterrupted run of RESUMABLE."""
    folder = tmp_path_factory.mktemp("ref")
    reference = run(*RESUMABLE, cwd=folder)
    return re.search("Test set:.*", reference.stdout).group(), folder / "lightning_logs/baseline/version_0"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_run_resumes_from_last_ckpt_to_the_same_result(sig: signal.Signals, uninterrupted, tmp_path) -> None:
    args = RESUMABLE
    expected, reference_dir = uninterrupted

    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "lab_cnn", *args], cwd=killed_dir,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    last = killed_dir / "lightning_logs/baseline/version_0/checkpoints/last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(sig)
    out, _ = process.communicate(timeout=120)
    assert "Test set:" not in out  # it was stopped during training, not after
    left = torch.load(last, weights_only=True)  # the checkpoint left behind is whole
    assert left["global_step"] < 3 * 150  # ... and from before the end: there is training left to resume

    resumed = run(*args, "--ckpt_path", "last", cwd=killed_dir)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming from lightning_logs/baseline/version_0/checkpoints/last.ckpt" in resumed.stderr
    assert re.search("Test set:.*", resumed.stdout).group() == expected
    reference_metrics = epoch_metrics(reference_dir)
    resumed_metrics = epoch_metrics(killed_dir / "lightning_logs/baseline/version_0")
    assert resumed_metrics["val/acc"][-1] == reference_metrics["val/acc"][-1]
    assert resumed_metrics["train/loss"][-1] == reference_metrics["train/loss"][-1]


def test_two_fits_started_together_get_their_own_version_folders(tmp_path) -> None:
    args = [sys.executable, "-m", "lab_cnn", *fit_args("baseline.yaml", *SHORT)]
    processes = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    runs = sorted((tmp_path / "lightning_logs/baseline").iterdir())
    assert [r.name for r in runs] == ["version_0", "version_1"]
    for r in runs:
        assert (r / "checkpoints/last.ckpt").is_file() and (r / "config.yaml").is_file()
        assert len(list(r.glob("events.out.tfevents.*"))) == 2  # one fit, one test: nobody else's


def test_two_data_commands_at_once_leave_verified_files(tmp_path) -> None:
    shutil.copytree(DATA_DIR / "mirror", tmp_path / "data" / "mirror")  # the wheel is cached, not downloaded
    args = [sys.executable, "-m", "lab_cnn", "data", "--data-dir", str(tmp_path / "data")]
    processes = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    assert mnist.problems(tmp_path / "data") == []
    assert not [p for p in mnist.raw_dir(tmp_path / "data").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path) -> None:
    """Lightning's DDP (2 processes, gloo) runs the baseline config; one run folder, all 10,000 tested."""
    ddp = ["--config", str(CONFIGS / "trainer" / "ddp_cpu.yaml"), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "10"]
    result = run(*fit_args("baseline.yaml", *ddp), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"Accuracy: \d+/10000", result.stdout)
    assert [p.name for p in (tmp_path / "lightning_logs/baseline").iterdir()] == ["version_0"]
