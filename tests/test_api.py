"""The Python API (lab_cnn.fit, test, predict, load) against the command, in this process; and the run's
contract: options that count batches count batches whatever steps_per_call, a resume is the run it resumes,
each test image counts once, each epoch shows its own numbers, and the session's state is left as it was."""

from __future__ import annotations

import ast
import os
import random
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lightning  # noqa: F401 - its own import-time settings come before the snapshot of the session's
import matplotlib
import numpy as np
import pytest
import torch
import yaml

import lab_cnn
from lab_cnn.data import BatchOrder, TensorBatches
from tests.helpers import CONFIGS, DATA_DIR, REPO, as_in_a_terminal, fit_args, run, scalars, steps_per_call

BASELINE = str(CONFIGS / "baseline.yaml")
DATA = {"data_dir": str(DATA_DIR)}
SHORT = {"max_epochs": 1, "limit_train_batches": 12, "limit_val_batches": 3, "limit_test_batches": 3}
QUIET = {"enable_progress_bar": False, "enable_model_summary": False}
STEPS_PER_CALL_8 = {"class_path": "lab_cnn.fast.StepsPerCall", "init_args": {"steps": 8}}  # as gpu.yaml has it


def as_options(section: str, values: dict) -> list[str]:
    return [a for key, value in values.items() for a in (f"--{section}.{key}", str(value).lower())]


def test_fit_the_function_and_fit_the_command_make_the_same_run(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    result = lab_cnn.fit(BASELINE, model={"hidden_units": 30}, data=DATA, trainer={**SHORT, **QUIET}, inspect=False)
    printed = capsys.readouterr().out
    command = run(
        *fit_args("baseline.yaml", "--model.hidden_units", "30", *as_options("trainer", SHORT), "--inspect", "false"),
        "--trainer.enable_progress_bar",
        "false",
        cwd=tmp_path,
    )
    assert command.returncode == 0, command.stderr[-2000:]
    line = re.search("Test set:.*", command.stdout).group()
    assert re.search("Test set:.*", printed).group() == line
    runs = tmp_path / "lightning_logs" / "baseline"
    assert result.log_dir == Path("lightning_logs/baseline/version_0")
    assert scalars(runs / "version_0", with_steps=True) == scalars(runs / "version_1", with_steps=True)
    logged = scalars(runs / "version_0")
    assert result.test_acc == logged["test/acc"][-1] and result.test_loss == logged["test/loss"][-1]
    assert [epoch["train/acc"] for epoch in result.history] == logged["train/acc"]
    assert [epoch["val/loss"] for epoch in result.history] == logged["val/loss"]
    assert result.checkpoint == Path("lightning_logs/baseline/version_0/checkpoints/last.ckpt")

    model = lab_cnn.load(result.checkpoint)
    assert isinstance(model, lab_cnn.LabNet) and not model.training and model.net.layers.fc1.out_features == 30
    tested = lab_cnn.test(BASELINE, result.checkpoint, model={"hidden_units": 30}, data=DATA, trainer=QUIET)
    assert tested.log_dir == result.log_dir and tested.metrics["test/images"] == 10_000
    # built from a config instead: the checkpoint must fit it, as for lab-cnn test
    with pytest.raises(lab_cnn.UserError, match=r"load: .*last.ckpt does not fit this model: net.layers.fc1.weight"):
        lab_cnn.load(result.checkpoint, config=BASELINE)
    Path("hidden30.yaml").write_text("model:\n  class_path: lab_cnn.LabNet\n  init_args:\n    hidden_units: 30\n")
    again = lab_cnn.load(result.checkpoint, config=[BASELINE, "hidden30.yaml"])
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def noise_file() -> str:
    """A file of random bytes (in the test's folder): not something torch.save wrote, and no code either."""
    Path("noise.bin").write_bytes(bytes(range(256)) * 4)
    return "noise.bin"


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: lab_cnn.fit(BASELINE, model={"kernel_siz": 3}, data=DATA), "model.kernel_siz: unknown key"),
        (lambda: lab_cnn.fit(BASELINE, model={"momentum": 2}, data=DATA), "model.momentum: 2.0 is not allowed"),
        (lambda: lab_cnn.fit("missing.yaml"), "missing.yaml: config file not found"),
        (lambda: lab_cnn.test(BASELINE, "missing.ckpt", data=DATA), "--ckpt_path: missing.ckpt does not exist"),
        (lambda: lab_cnn.fit(BASELINE, name="../x", data=DATA), "--name: '../x' is not allowed"),
        (lambda: lab_cnn.fit(BASELINE, data=DATA, trainer={"accelerator": "tpu"}), "'tpu' but this machine has none"),
        (lambda: lab_cnn.load("missing.ckpt"), "load: missing.ckpt does not exist"),
        (lambda: lab_cnn.load(None), "load: None is not allowed"),
        (lambda: lab_cnn.load(noise_file()), "load: noise.bin is not a file torch.save wrote"),
        (lambda: lab_cnn.fit(5), "config: 5 is not allowed; give a config file"),
        (lambda: lab_cnn.fit([]), "config: [] is not allowed"),
        (lambda: lab_cnn.fit(BASELINE, model=[1, 2], data=DATA), "model: [1, 2] is not allowed; give its overrides"),
        (lambda: lab_cnn.fit(BASELINE, trainer="max_epochs=1", data=DATA), "trainer: 'max_epochs=1' is not allowed"),
        (lambda: lab_cnn.fit(BASELINE, name="", data=DATA), "--name: '' is not allowed"),
        (lambda: lab_cnn.fit(BASELINE, seed=-1, data=DATA), "seed_everything: -1 is not allowed"),
        (lambda: lab_cnn.fit(BASELINE, model={"activation": abs}, data=DATA), "model.activation: <built-in func"),
        (lambda: lab_cnn.fit(BASELINE, trainer={"callbacks": [object()]}, data=DATA), "trainer.callbacks: [<object"),
        (lambda: lab_cnn.fit(BASELINE, name=Ellipsis, data=DATA), "name: Ellipsis is not allowed; give what a config"),
        (lambda: lab_cnn.fit(BASELINE, model={"hidden_units": {20, 10}}, data=DATA), "model.hidden_units: {10, 20} is"),
        (lambda: lab_cnn.fit(BASELINE, model={"hidden_units": [10, b"20"]}, data=DATA), "hidden_units: [10, b'20'] is"),
        (lambda: lab_cnn.fit(BASELINE, model={"hidden_units": "1:30"}, data=DATA), "'1:30' is not allowed; YAML reads"),
        (lambda: lab_cnn.fit(BASELINE, model={"hidden_units": [20, "1:30"]}, data=DATA), "hidden_units.1: '1:30' is"),
    ],
)
def test_a_mistake_raises_user_error_with_the_commands_message(call, expected: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(lab_cnn.UserError, match=re.escape(expected)):
        call()
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize("limit", [45, 0.1])
def test_steps_per_call_count_batches_as_the_textbook_step_does(limit: int | float, tmp_path, monkeypatch) -> None:
    """45 batches are 45 optimizer steps whatever K (at K = 8: five chunks of 8 and one of 5); so is a
    fraction of the epoch's 469."""
    monkeypatch.chdir(tmp_path)
    trainer = {**SHORT, **QUIET, "limit_train_batches": limit}
    results = {
        k: lab_cnn.fit(BASELINE, data=DATA, trainer={**trainer, "callbacks": steps}, name=f"k{k}", inspect=False)
        for k, steps in ((1, []), (8, [STEPS_PER_CALL_8]))
    }
    assert results[1].metrics == results[8].metrics and results[1].history == results[8].history
    steps = torch.load(results[8].checkpoint, weights_only=True)["global_step"]
    assert steps == (45 if limit == 45 else int(469 * limit))


@pytest.mark.parametrize(
    ("trainer", "expected"),
    [
        ({"max_steps": 100}, "trainer.max_steps: 100 is not allowed"),
        ({"val_check_interval": 50}, "trainer.val_check_interval: 50 is not allowed"),
        ({"val_check_interval": 0.5}, "trainer.val_check_interval: 0.5 is not allowed"),
        ({"accumulate_grad_batches": 2}, "trainer.accumulate_grad_batches: 2 is not allowed"),
        ({"limit_train_batches": 0.0001}, "trainer.limit_train_batches: 0.0001 leaves no batch"),
    ],
)
def test_options_the_fast_path_cannot_count_are_refused(trainer: dict, expected: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(lab_cnn.UserError, match=re.escape(expected)):
        lab_cnn.fit(BASELINE, data=DATA, trainer={**SHORT, **QUIET, **trainer, "callbacks": [STEPS_PER_CALL_8]})
    assert not list(tmp_path.glob("lightning_logs/*/version_*/checkpoints"))


def test_one_step_per_call_takes_lightnings_own_options(tmp_path, monkeypatch) -> None:
    """K = 1 is Lightning's automatic optimization: accumulation and clipping are Lightning's to do."""
    monkeypatch.chdir(tmp_path)
    trainer = {**SHORT, **QUIET, "accumulate_grad_batches": 2, "gradient_clip_val": 0.5, "max_steps": 4}
    result = lab_cnn.fit(BASELINE, data=DATA, trainer=trainer, inspect=False)
    assert torch.load(result.checkpoint, weights_only=True)["global_step"] == 4  # 8 batches, 2 per step


def test_a_callback_is_given_as_its_class_and_arguments(tmp_path, monkeypatch) -> None:
    """docs/api.md: what a config file could hold, so the run's config.yaml makes the same run again."""
    monkeypatch.chdir(tmp_path)
    monitor = {"class_path": "lightning.pytorch.callbacks.LearningRateMonitor", "init_args": {"log_momentum": True}}
    result = lab_cnn.fit(BASELINE, data=DATA, trainer={**SHORT, **QUIET, "callbacks": [monitor]}, inspect=False)
    logged = scalars(tmp_path / result.log_dir)
    assert (logged["lr-SGD"][0], logged["lr-SGD-momentum"][0]) == pytest.approx((0.01, 0.5))  # the baseline's
    (recorded,) = yaml.safe_load((tmp_path / result.log_dir / "config.yaml").read_text())["trainer"]["callbacks"]
    assert (recorded["class_path"], recorded["init_args"]["log_momentum"]) == (monitor["class_path"], True)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("resume")
    assert (
        run(*fit_args("baseline.yaml", *as_options("trainer", SHORT), "--inspect", "false"), cwd=folder).returncode == 0
    )
    return folder


def test_lightnings_load_from_checkpoint_rebuilds_the_runs_model(trained_run: Path) -> None:
    """LabNet takes its net's knobs as ``**knobs``, so Lightning hands it every stored hyperparameter: the model
    it builds is the one lab_cnn.load builds from the run's config.yaml, weights and all."""
    checkpoint = next(trained_run.glob("lightning_logs/baseline/version_*/checkpoints/last.ckpt"))
    loaded, expected = lab_cnn.LabNet.load_from_checkpoint(checkpoint, weights_only=True), lab_cnn.load(checkpoint)
    assert dict(loaded.hparams) == dict(expected.hparams) and len(loaded.hparams) == 10
    assert all(torch.equal(v, expected.state_dict()[k]) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (["--model.lr", "0.5"], "trained with model.lr 0.01 and this command has 0.5"),
        (["--model.momentum", "0.9"], "trained with model.momentum 0.5 and this command has 0.9"),
        (["--data.batch_size", "32"], "trained with data.batch_size 128 and this command has 32"),
        (steps_per_call(8), "trained with trainer.callbacks None"),
        (["--seed_everything", "2"], "trained with seed_everything 1 and this command has 2"),
        (["--name", "other"], "--name other: --ckpt_path"),
    ],
)
def test_a_resume_with_other_settings_is_refused_and_the_run_kept(change, expected: str, trained_run: Path) -> None:
    run_dir = trained_run / "lightning_logs/baseline/version_0"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    args = fit_args("baseline.yaml", *as_options("trainer", {**SHORT, "max_epochs": 2}), "--inspect", "false")
    result = run(
        *args, "--ckpt_path", "lightning_logs/baseline/version_0/checkpoints/last.ckpt", *change, cwd=trained_run
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr[-2000:]
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in (trained_run / "lightning_logs").iterdir()) == ["baseline"]


def test_a_resume_that_trains_longer_goes_on_in_its_folder_and_says_so(trained_run: Path, tmp_path) -> None:
    folder = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(trained_run), str(folder)], check=True)
    args = fit_args("baseline.yaml", *as_options("trainer", {**SHORT, "max_epochs": 2}), "--inspect", "false")
    result = run(*args, "--ckpt_path", "last", cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    config = yaml.safe_load((folder / "lightning_logs/baseline/version_0/config.yaml").read_text())
    assert config["trainer"]["max_epochs"] == 2  # the run's record says what was trained
    assert torch.load(folder / "lightning_logs/baseline/version_0/checkpoints/last.ckpt")["global_step"] == 24


def test_a_checkpoints_test_is_logged_at_its_last_step(trained_run: Path) -> None:
    common = ["--config", BASELINE, "--data.data_dir", str(DATA_DIR), "--trainer.limit_test_batches", "3"]
    result = run("test", *common, "--ckpt_path", "last", cwd=trained_run)
    assert result.returncode == 0, result.stderr[-2000:]
    logged = scalars(trained_run / "lightning_logs/baseline/version_0", True)
    for tag in ("test/acc", "hp/test_acc"):  # the test's own scalar, and the inspection's (TensorBoard's HParams)
        assert [step for step, _ in logged[tag]] == [12, 12], tag  # fit's own test, then this one: after 12 steps


@pytest.mark.parametrize("processes", [2, 3, 7])
def test_every_test_image_is_counted_once_across_processes(processes: int) -> None:
    data = TensorBatches(torch.zeros(10_000, 1, 28, 28), torch.arange(10_000))
    shares = []
    for rank in range(processes):
        order = BatchOrder(data, 128, False, 1, processes, rank, each_once=True)
        batches = list(order)
        assert len(batches) == len(order)
        shares.append(torch.cat(batches))
    assert sorted(torch.cat(shares).tolist()) == list(range(10_000))


def test_predict_in_several_processes_is_refused(tmp_path) -> None:
    """Each process would write the CSV of its own share under the labels of all; one process predicts all."""
    torch.save(lab_cnn.LabNet().net.state_dict(), tmp_path / "m.pth")
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    result = run("predict", *fit_args("baseline.yaml", *ddp)[1:], "--ckpt_path", str(tmp_path / "m.pth"), cwd=tmp_path)
    assert result.returncode == 2 and "predict runs in one process" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "lightning_logs").exists()


def test_each_epoch_shows_its_own_numbers(tmp_path) -> None:
    """An epoch that does not validate shows no validation; the bar and the lines count epochs from 1."""
    trainer = as_options("trainer", {**SHORT, "max_epochs": 3, "check_val_every_n_epoch": 2})
    with_bar = run(*fit_args("baseline.yaml", *trainer, "--inspect", "false"), cwd=tmp_path)
    assert with_bar.returncode == 0, with_bar.stderr[-2000:]
    lines = [line for line in with_bar.stdout.replace("\r", "\n").splitlines() if re.match(r"Epoch \d/3: train", line)]
    assert [line.split(":")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert "val" not in lines[0] and "val loss" in lines[1] and "val" not in lines[2]
    assert re.search(r"Epoch 3/3: +\d+%", with_bar.stdout) and not re.search(r"Epoch 0\b", with_bar.stdout)
    history = lab_cnn.fit(
        BASELINE, data=DATA, trainer={**SHORT, **QUIET, "max_epochs": 2, "check_val_every_n_epoch": 2}
    )
    assert "val/acc" not in history.history[0] and "val/acc" in history.history[1]


def session_state() -> tuple:
    return (
        list(warnings.filters),
        matplotlib.get_backend(),
        torch.are_deterministic_algorithms_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
        torch.get_float32_matmul_precision(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )


def test_a_run_leaves_the_sessions_settings_as_they_were(tmp_path, monkeypatch) -> None:
    """Warning filters, torch's flags, Lightning's environment variables and the session's random draws;
    numpy numbers are taken as the numbers they are (a sweep's np.linspace)."""
    monkeypatch.chdir(tmp_path)
    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    before, environment = session_state(), dict(os.environ)
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    trainer = {**SHORT, **QUIET, "deterministic": True, "max_epochs": np.int64(1)}
    result = lab_cnn.fit(BASELINE, model={"lr": np.float64(0.02)}, data=DATA, trainer=trainer, seed=np.int64(3))
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    assert session_state() == before and dict(os.environ) == environment
    assert result.history and yaml.safe_load((result.log_dir / "config.yaml").read_text())["seed_everything"] == 3


def test_importing_lab_cnn_changes_no_settings_of_the_session() -> None:
    code = (
        "import warnings, matplotlib, torch, lightning, tensorboard\n"
        "state = lambda: (list(warnings.filters), matplotlib.get_backend(), torch.get_float32_matmul_precision())\n"
        "before = state()\n"
        "import lab_cnn, lab_cnn.api, lab_cnn.training, lab_cnn.studies.report, keras_parity.module\n"
        "assert state() == before, [f for f in state()[0] if f not in before[0]]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


LAYERS = ("lab_cnn.cli", "lab_cnn.studies", "lab_cnn.fast", "lab_cnn.explore", "keras_parity")  # on the core


def test_the_core_imports_no_layer_anywhere_in_its_code() -> None:
    """README: the layers import the core and nothing imports back; an import inside a function counts too
    (``python -m lab_cnn``, the command's entry point, is the CLI's)."""
    found = []
    for path in sorted((REPO / "lab_cnn").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            found += [f"{path.name}: {n}" for n in names if n.startswith(LAYERS) and path.name != "__main__.py"]
    assert not found


def test_a_run_and_a_read_run_import_no_tensorflow_and_leave_its_summaries_working(tmp_path) -> None:
    """In a user's session, a lab-cnn run (with its inspection) imports no layer (the core alone runs it) and,
    with a read of its events, does without TensorFlow, and TensorFlow's tf.summary (keras-parity's scalars and
    HParams, Keras' TensorBoard callback) still writes after them (lab_cnn.compat.tensorboard_without_tensorflow)."""
    code = (
        "import sys, lab_cnn\n"
        f"result = lab_cnn.fit({str(BASELINE)!r}, data={DATA!r}, trainer={{**{SHORT!r}, **{QUIET!r}}})\n"
        f"assert not [m for m in sys.modules if m.startswith({LAYERS!r})], 'a run of the core imported a layer'\n"
        "from lab_cnn.studies.study import read_run\n"
        "read_run(result.log_dir)\n"
        "assert 'tensorflow' not in sys.modules, 'a lab-cnn run imported TensorFlow'\n"
        "import tensorflow as tf\n"
        "with tf.summary.create_file_writer('keras_logs').as_default():\n"
        "    assert tf.summary.scalar('train/loss', 0.5, step=1)\n"
        "    assert tf.summary.histogram('weights', tf.range(10.0), step=1)\n"
        "    from tensorboard.plugins.hparams import api as hp\n"  # keras-parity's HParams
        "    assert hp.hparams({'conv_layers': 2})\n"
        "import keras\n"  # and Keras' own TensorBoard callback
        "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
        "model.compile(loss='mse')\n"
        "board = keras.callbacks.TensorBoard('keras_callback', histogram_freq=1)\n"
        "model.fit(tf.zeros([8, 4]), tf.zeros([8, 2]), epochs=1, verbose=0, callbacks=[board])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "keras_logs").glob("events.out.tfevents.*"))
    assert list((tmp_path / "keras_callback" / "train").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "command",
    ["-m lab_cnn --help", "-m lab_cnn summary --config configs/baseline.yaml", "-m keras_parity --help"],
)
def test_output_into_a_pipe_closed_early_ends_quietly(command: str) -> None:
    """``lab-cnn --help | head -1``: the first line, and no BrokenPipeError."""
    result = subprocess.run(
        f"{sys.executable} {command} | head -c 5", shell=True, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert len(result.stdout) == 5 and result.stderr == "", result.stderr[-2000:]


@pytest.mark.parametrize("command", ["-m lab_cnn --help", "-m lab_cnn data --help", "-m keras_parity --help"])
def test_a_command_started_with_its_output_closed_ends_quietly(command: str) -> None:
    """``lab-cnn --help >&-``: Python has no sys.stdout then (argparse writes its help to stderr), and no traceback."""
    result = subprocess.run(
        f"{sys.executable} {command} >&-", shell=True, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("command", "prog"),
    [("-m lab_cnn fit --config configs/baseline.yaml", "lab-cnn"), ("-m keras_parity --mode summary", "keras-parity")],
)
def test_ctrl_c_while_a_command_imports_is_one_line(command: str, prog: str) -> None:
    """Ctrl-C in the seconds a command imports torch, then Lightning or Keras: one line and exit code 130, as
    later on, not the traceback of an import."""
    process = subprocess.Popen(
        [sys.executable, *command.split()],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    maps = Path(f"/proc/{process.pid}/maps")
    while "libtorch_cpu.so" not in maps.read_text():  # torch's import under way; the rest comes after it
        assert process.poll() is None, "it ended first"
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and stderr.splitlines() == [f"{prog}: interrupted"], stderr[-2000:]


def test_a_run_folder_that_cannot_be_written_gets_one_line(trained_run: Path) -> None:
    """The test of a checkpoint writes into its run's folder: refused before TensorBoard's writer thread fails."""
    run_dir = trained_run / "lightning_logs/baseline/version_0"
    if subprocess.run(["chattr", "+i", str(run_dir)], capture_output=True).returncode != 0:
        pytest.fail("chattr +i (e2fsprogs, as root) makes the folder unwritable for this test; it failed here")
    try:
        args = ["--config", BASELINE, "--data.data_dir", str(DATA_DIR), "--trainer.limit_test_batches", "2"]
        result = run("test", *args, "--ckpt_path", "last", cwd=trained_run)
    finally:
        subprocess.run(["chattr", "-i", str(run_dir)], check=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("lab-cnn: error:")]
    assert errors == [
        "lab-cnn: error: the checkpoint's run folder: lightning_logs/baseline/version_0 cannot be written "
        "(Operation not permitted)"
    ]
