"""The ``lab-cnn`` / ``lightning`` commands, run for real: configs, logs, checkpoints, summary."""

from __future__ import annotations

import argparse
import contextlib
import csv
import inspect
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser

from keras_parity.module import KerasNet
from keras_parity.nets import KerasCNN
from lab_cnn.cli import main
from lab_cnn.documented import documented
from lab_cnn.errors import ArgumentParser as ArgumentParserWithOneLineErrors
from lab_cnn.errors import UserError
from lab_cnn.lightning_cli import lightning_cli
from lab_cnn.module import LabNet
from lab_cnn.nets import LabCNN
from lab_cnn.summary import layer_rows, total_params
from lab_cnn.validators import check_recipe, whole_number
from tests.helpers import CONFIGS, REPO, fit_args, run, run_in_process, scalars

ALL_CONFIGS = sorted(p.name for p in CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_every_config_passes_fast_dev_run(config: str, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    main(fit_args(config, "--trainer.fast_dev_run", "true", "--trainer.enable_progress_bar", "false"))
    assert "Test set: Average loss:" in capsys.readouterr().out


def summary_rows(*args: str) -> list[tuple]:
    """``lab-cnn summary ARGS`` as printed: one (layer, shape, params) per row, and the totals."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["summary", *args])
    return [tuple(re.split(r"\s{2,}", line.strip())) for line in printed.getvalue().splitlines()[1:]]


@pytest.mark.parametrize(
    ("config", "overrides"),
    [
        *((c, []) for c in ALL_CONFIGS),
        ("baseline.yaml", ["--model.kernel_size", "3", "--model.hidden_units", "[30, 20]", "--model.pool", "avg"]),
        ("baseline.yaml", ["--model.init_args.conv_channels=[8]", "--model.activation=tanh"]),
        ("keras_relu.yaml", ["--model.conv_layers", "1", "--model.dense_units", "64"]),
    ],
)
def test_summary_and_fit_build_the_same_model_from_the_same_arguments(config: str, overrides: list[str]) -> None:
    """summary prints the net of the model fit builds: the same layers, shapes and counts."""
    printed = summary_rows("--config", str(CONFIGS / config), *overrides)
    model = lightning_cli(
        ["--config", str(CONFIGS / config), *overrides, "--data.data_dir", str(REPO / "data")], run=False
    ).model
    built = [
        (f"{name} ({kind})", str(shape), f"{trainable + frozen:,}")
        for name, kind, shape, trainable, frozen in layer_rows(model.net)
    ]
    assert printed[: len(built)] == built
    assert printed[len(built)] == (f"Total params: {total_params(model.net):,}",)
    if config.startswith("keras_") and not overrides:
        keras = documented()["keras"]["summaries"]["one_conv" if "one_conv" in config else "two_conv"]
        assert total_params(model.net) == keras["total_params"]


def test_a_time_and_numbers_in_the_base_they_say_are_taken_from_the_command_line() -> None:
    """The refusal of lone numbers YAML reads in base 8 or 60 is of what the parser took for a number: a time
    in Lightning's DD:HH:MM:SS stays text, and 0x10 and 1_0 are read as they say."""
    args = ["--config", str(CONFIGS / "baseline.yaml"), "--trainer.max_time", "00:00:01:30", "--data.data_dir", "d"]
    config = lightning_cli([*args, "--model.hidden_units", "0x10", "--model.conv_channels=[1_0, 20]"], run=False).config
    assert config["trainer.max_time"] == "00:00:01:30"
    assert (config["model.init_args.hidden_units"], config["model.init_args.conv_channels"]) == (16, [10, 20])


NUMBER_TEXTS = [
    "0x10",
    "1_0",
    "07",
    "09",
    "07860",
    "+5",
    " 12",
    "0b11",
    "٥",
    "017",
    "1:30",
    "0o17",
    "²",
    "true",
    "5.0",
    "1e2",
]


@pytest.mark.parametrize("text", NUMBER_TEXTS)
def test_the_argparse_commands_read_a_number_as_fit_does(text: str) -> None:
    """keras-parity's, lab-cnn study's and explore's number options read a text as fit's parser reads it (YAML,
    then int; base 8 and 60 refused by lab-cnn's check): the same number, or a refusal in both."""
    args = ["--config", str(CONFIGS / "baseline.yaml"), "--data.data_dir", "d", "--model.hidden_units", text]
    try:
        fit = lightning_cli(args, run=False).config["model.init_args.hidden_units"]
    except UserError:
        fit = "refused"
    try:
        ours = whole_number(text)
    except argparse.ArgumentTypeError:
        ours = "refused"
    assert ours == fit


@pytest.mark.parametrize("text", ["-1e-3", "-2.5E-6", "-1_000", "-.5", "-1"])
def test_a_negative_number_after_an_option_is_its_value(text: str) -> None:
    """``--option -1e-3`` gives the option -1e-3, as ``--option=-1e-3`` does (Python before 3.14 took it for an
    option of its own), in fit's parser and in the argparse commands'."""
    args = ["--config", str(CONFIGS / "baseline.yaml"), "--data.data_dir", "d"]
    spaced = lightning_cli([*args, "--trainer.gradient_clip_val", text], run=False).config
    joined = lightning_cli([*args, f"--trainer.gradient_clip_val={text}"], run=False).config
    assert spaced["trainer.gradient_clip_val"] == joined["trainer.gradient_clip_val"] == float(text)
    parser = ArgumentParserWithOneLineErrors()
    parser.add_argument("--value")
    assert parser.parse_args(["--value", text]).value == text


def test_print_config_prints_a_config_that_passes_the_checks_and_makes_no_run(tmp_path) -> None:
    args = ["--config", str(CONFIGS / "baseline.yaml"), "--model.hidden_units", "0x10", "--print_config"]
    printed = run_in_process("fit", *args, cwd=tmp_path)
    assert printed.returncode == 0 and printed.stderr == "", printed.stderr
    assert yaml.safe_load(printed.stdout)["model"]["init_args"]["hidden_units"] == 16
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("model", "net"), [(LabNet, LabCNN), (KerasNet, KerasCNN)])
def test_a_model_class_takes_its_nets_knobs_from_the_net_where_they_are_declared_once(model: type, net: type) -> None:
    """The LightningModule declares the recipe only; the parser (as LightningCLI builds it) finds the net's
    knobs through its ``**knobs``, with the net's defaults and help, and its hyperparameters hold them all."""
    net_args, recipe = inspect.signature(net).parameters, set(inspect.signature(check_recipe).parameters)
    assert set(inspect.signature(model).parameters) == recipe | {"knobs"}
    parser = ArgumentParser()
    parser.add_class_arguments(model, "model")
    parsed = parser.get_defaults()["model"]
    assert set(vars(parsed)) == set(net_args) | recipe
    assert all(parsed[k] == p.default for k, p in net_args.items())
    assert {a.dest: a.help for a in parser._actions}["model.kernel_size"].startswith("side of every")  # the net's docs
    assert set(model(kernel_size=3).hparams) == set(net_args) | recipe
    assert model(kernel_size=3).hparams["kernel_size"] == 3


@pytest.mark.parametrize("precision", ["64-true", "bf16-true"])
def test_a_model_kept_in_another_dtype_trains_on_inputs_of_its_dtype(
    precision: str, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    main(fit_args("baseline.yaml", "--trainer.fast_dev_run", "2", "--trainer.precision", precision))
    assert "Test set: Average loss:" in capsys.readouterr().out


def test_bf16_mixed_precision_runs_on_the_cpu_in_bf16(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    dtypes: list[torch.dtype] = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: dtypes.append(output.dtype) if isinstance(module, torch.nn.Conv2d) else None
    )
    try:
        main(fit_args("baseline.yaml", "--trainer.fast_dev_run", "2", "--trainer.precision", "bf16-mixed"))
    finally:
        handle.remove()
    assert "Test set: Average loss:" in capsys.readouterr().out
    assert dtypes and set(dtypes) == {torch.bfloat16}  # every convolution ran in bf16, in training and test


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given on a machine without a GPU")
def test_gpu_config_without_a_gpu_stops_with_a_clear_message(tmp_path) -> None:
    result = run(*fit_args("baseline.yaml", "--config", str(CONFIGS / "trainer" / "gpu.yaml")), cwd=tmp_path)
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "lightning_logs").exists()


def test_help_lists_every_command_without_importing_lightning() -> None:
    code = (
        "import sys; from lab_cnn.cli import main; main(['--help']); print({'lightning', 'torch'} & set(sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.startswith("usage: lab-cnn COMMAND")
    for command in ("fit", "validate", "test", "predict", "data", "summary", "study", "report"):
        assert f"\n  {command} " in result.stdout
    assert result.stdout.strip().endswith("set()")
    assert run("fit", "--help", cwd=REPO).stdout.startswith("usage: lab-cnn [options] fit")  # not __main__.py


def test_a_lightning_command_keeps_its_imports_out_of_the_garbage_collector() -> None:
    """The process frozen after Lightning's import, not before it: its exit and full collections skip them."""
    code = (
        "import atexit, gc, sys; from lab_cnn.cli import run; sys.argv = ['lab-cnn', 'fit', '--help'];"
        "atexit.register(lambda: print(gc.get_freeze_count(), len(gc.get_objects()), 'lightning' in sys.modules));"
        "run()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    frozen, collectable, imported = result.stdout.split()[-3:]
    assert imported == "True" and int(frozen) > 10 * int(collectable)


def test_lightning_command_runs_a_config_as_written(tmp_path) -> None:
    lightning = Path(sys.executable).with_name("lightning")
    result = subprocess.run(
        [str(lightning), *fit_args("avgpool.yaml", "--trainer.fast_dev_run", "true")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Test set: Average loss:" in result.stdout


def test_fit_logs_checkpoints_and_test_reproduces_from_last_ckpt_in_the_same_run(tmp_path) -> None:
    fit = run(
        *fit_args("baseline.yaml", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "40"), cwd=tmp_path
    )
    assert fit.returncode == 0, fit.stderr
    [line] = [row for row in fit.stdout.splitlines() if row.startswith("Test set:")]
    run_dir = tmp_path / "lightning_logs" / "baseline" / "version_0"
    config_text = (run_dir / "config.yaml").read_text()
    assert (run_dir / "hparams.yaml").is_file()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()

    logged = scalars(run_dir)
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert len(logged[tag]) == 2, tag
    assert logged["train/acc"][1] > logged["train/acc"][0] > 0.1
    assert len(logged["test/acc"]) == 1 and logged["test/images"] == [10_000]
    assert f"({100 * logged['test/acc'][0]:.0f}%)" in line and f"{logged['test/loss'][0]:.4f}" in line

    common = ["--config", str(CONFIGS / "baseline.yaml"), "--data.data_dir", str(REPO / "data")]
    again = run("test", *common, "--ckpt_path", "last", cwd=tmp_path)  # the newest last.ckpt of lightning_logs/baseline
    assert again.returncode == 0, again.stderr
    assert line in again.stdout.splitlines()
    assert f"Logged to {Path('lightning_logs/baseline/version_0')}" in again.stderr
    predict = run("predict", *common, "--ckpt_path", str(ckpt), cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr
    # test and predict add to the run whose checkpoint they used: no new version, the fit's config kept
    assert [p.name for p in (tmp_path / "lightning_logs" / "baseline").iterdir()] == ["version_0"]
    assert (run_dir / "config.yaml").read_text() == config_text
    assert len(scalars(run_dir)["test/acc"]) == 2
    rows = list(csv.DictReader(open(run_dir / "predictions.csv")))
    assert len(rows) == 10_000
    correct = sum(r["label"] == r["digit"] for r in rows)
    assert f"Accuracy: {correct}/10000" in line


NOISE = ("litlogger", "litmodels", "LeafSpec", "FutureWarning", "DeprecationWarning", "dirpath has changed",
         "logging interval", "cuInit", "oneDNN", "absl", "Traceback")  # fmt: skip


@pytest.mark.long  # six commands as processes, two of them Keras (about 110 s here)
def test_runs_show_their_numbers_and_nothing_else(tmp_path) -> None:
    """One line per epoch with its train and val loss and accuracy, with the bar (Epoch N/M) or without it;
    nothing that says nothing about the run (Lightning's tip, torch's and TensorFlow's notices)."""
    short = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "20", "--trainer.limit_val_batches", "5"]
    user = {"cwd": tmp_path, "env": {"PYTHONWARNINGS": ""}}  # a user's environment: Python's own warning filters
    with_bar = run(*fit_args("baseline.yaml", *short), **user)
    assert re.search(r"Epoch 2/2: 100%", with_bar.stdout)
    without = run(*fit_args("baseline.yaml", *short, "--trainer.enable_progress_bar", "false"), **user)
    for result in (with_bar, without):
        epochs = re.findall(r"Epoch \d/2: train.*", result.stdout)
        assert [e.split(":")[0] for e in epochs] == ["Epoch 1/2", "Epoch 2/2"]
        assert re.fullmatch(r"Epoch 2/2: train loss [\d.]+, acc [\d.]+% \| val loss [\d.]+, acc [\d.]+%", epochs[1])
    ckpt = tmp_path / "lightning_logs/baseline/version_0/checkpoints/last.ckpt"
    common = [
        "--config",
        str(CONFIGS / "baseline.yaml"),
        "--data.data_dir",
        str(REPO / "data"),
        "--ckpt_path",
        str(ckpt),
    ]
    keras = ["--data-dir", str(REPO / "data"), "--model_path", "models/k.keras"]
    results = [with_bar, without, run("test", *common, **user), run("predict", *common, **user)]
    results += [run("--mode", mode, *keras, *extra, **user, command="keras_parity")
                for mode, extra in (("train", ["--epochs", "1", "--limit-batches", "2"]), ("test", []))]  # fmt: skip
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
        said = result.stdout + result.stderr
        assert not [noise for noise in NOISE if noise in said], said[-3000:]


def test_the_docs_config_table_gives_each_configs_parameter_count_from_summary() -> None:
    readme = (REPO / "docs" / "cli.md").read_text()
    rows = [line for line in readme.splitlines() if re.match(r"\| `\w+\.yaml`", line)]
    listed = {
        name: cells[-2].strip()
        for line in rows
        for cells in [line.split("|")]
        for name in re.findall(r"`(\w+\.yaml)`", cells[1])
    }
    assert set(listed) == set(ALL_CONFIGS)  # every config, once
    for config, params in listed.items():
        total = next(
            row[0] for row in summary_rows("--config", str(CONFIGS / config)) if row[0].startswith("Total params")
        )
        assert total == f"Total params: {params}", config
