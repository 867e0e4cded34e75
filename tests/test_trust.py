"""Trust: every mistake gets one line and exit code 2 and leaves nothing behind; numbers that would be
wrong are refused; interrupted runs resume exactly; safe loading; concurrent runs; both frameworks in
one process. Every case runs the real command in a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from lab_cnn import mnist
from lab_cnn.parse_errors import describe_parse_error
from tests.helpers import CONFIGS, DATA_DIR, REPO, fit_args, run, run_in_process, scalars, steps_per_call

SHORT = [
    "--trainer.max_epochs",
    "1",
    "--trainer.limit_train_batches",
    "3",
    "--trainer.limit_val_batches",
    "2",
    "--trainer.limit_test_batches",
    "2",
    "--inspect",
    "false",
    "--trainer.enable_progress_bar",
    "false",
]
BASELINE = ["--config", str(CONFIGS / "baseline.yaml"), "--data.data_dir", str(DATA_DIR)]
LAST = "lightning_logs/baseline/version_0/checkpoints/last.ckpt"


def one_line_error(result: subprocess.CompletedProcess, prog: str = "lab-cnn") -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


def snapshot(folder: Path) -> list[str]:
    """Every path under the folders a refused command must leave as they were."""
    return sorted(str(p.relative_to(folder)) for d in ("lightning_logs", "models") for p in (folder / d).rglob("*"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A folder holding a short baseline run (lightning_logs/baseline/version_0) and files to refuse."""
    folder = tmp_path_factory.mktemp("trained")
    assert run(*fit_args("baseline.yaml", *SHORT), cwd=folder).returncode == 0
    torch.save({"not": "weights"}, folder / "junk.pt")
    (folder / "a_folder").mkdir()
    (folder / "reports" / "study_yaml_a_folder" / "study.yaml").mkdir(parents=True)
    (folder / "list.yaml").write_text("- 1\n- 2\n")
    (folder / "latin1.yaml").write_bytes("model:\n  init_args:\n    activation: r\xe9lu\n".encode("latin-1"))
    (folder / "afile").write_text("a file, not a folder")
    (folder / "models").mkdir()
    torch.save({"state_dict": {"net.layers.conv1.weight": 1}}, folder / "not_tensors.ckpt")
    (folder / "empty.yaml").write_text("")
    (folder / "tab.yaml").write_text("model:\n\tlr: 0.1\n")  # YAML indents with spaces only
    (folder / "loop.yaml").write_text("trainer: &x {callbacks: [*x]}\n")  # the parser would walk it forever
    (folder / "binary.yaml").write_text("model:\n  init_args:\n    hidden_units: !!binary NTA=\n")  # b'50'
    (folder / "octal.yaml").write_text("model:\n  init_args:\n    hidden_units: 017\n")  # YAML 1.1: 15
    (folder / "base60.yaml").write_text("model:\n  init_args:\n    hidden_units: [50, 1:30]\n")  # YAML 1.1: 90
    (folder / "quoted.yaml").write_text("model:\n  init_args:\n    hidden_units: [20, '1:30']\n")  # the parser: 90
    (folder / "merge_both.yaml").write_text("model:\n  init_args:\n    <<: [{hidden_units: 20}, {hidden_units: 30}]\n")
    (folder / "number_key.yaml").write_text("model:\n  init_args:\n    5: 1\n")
    os.mkfifo(folder / "fifo.yaml")  # a reader waits for a writer
    (folder / "deep.yaml").write_text((CONFIGS / "baseline.yaml").read_text() + "x: " + "[" * 20_000 + "]" * 20_000)
    (folder / "trainer5.yaml").write_text("trainer: 5\n")
    (folder / "unknown_section.yaml").write_text("trainer:\n  max_epochs: 1\nfoo: 1\n")
    (folder / "lightning_logs" / "keras").mkdir()
    (folder / "lightning_logs" / "keras" / "afile").write_text("a file where a run folder would go")
    return folder


# (arguments, what the one line says): each refused before anything is written
MISTAKES = {
    "ckpt missing": (["test", *BASELINE, "--ckpt_path", "missing.ckpt"], "--ckpt_path: missing.ckpt does not exist"),
    "ckpt not a regular file": (["test", *BASELINE, "--ckpt_path", "/dev/null"], "/dev/null is not a regular file"),
    "ckpt folder": (["test", *BASELINE, "--ckpt_path", "a_folder"], "a_folder is a folder; give a checkpoint file"),
    "ckpt not weights": (["test", *BASELINE, "--ckpt_path", "junk.pt"], "holds no model weights"),
    "ckpt best": (
        ["test", *BASELINE, "--ckpt_path", "best"],
        "--ckpt_path best: Lightning knows that checkpoint only within one fit",
    ),
    "fit ckpt folder": (["fit", *BASELINE, "--ckpt_path", "a_folder"], "a_folder is a folder"),
    "test without ckpt": (["test", *BASELINE], "test needs --ckpt_path"),
    "config without its file": (["test", "--config"], "argument -c/--config: expected one argument"),
    "test a run's checkpoint without a config": (
        [
            "test",
            "--data.data_dir",
            str(DATA_DIR),
            "--ckpt_path",
            "lightning_logs/baseline/version_0/checkpoints/last.ckpt",
        ],
        "model: no model given; give the config its run saved beside the checkpoint: "
        "--config lightning_logs/baseline/version_0/config.yaml",
    ),
    "predict a run's checkpoint without a config": (
        ["predict", "--ckpt_path=lightning_logs/baseline/version_0/checkpoints/last.ckpt"],
        "model: no model given; give the config its run saved beside the checkpoint: --config lightning_logs/baseline",
    ),
    "test a checkpoint of no run without a config": (
        ["test", "--ckpt_path", "junk.pt"],
        "model: no model given; give a config",
    ),
    "validate without ckpt": (["validate", *BASELINE], "validate needs --ckpt_path"),
    "predict without ckpt": (["predict", *BASELINE], "predict needs --ckpt_path"),
    "last without runs": (
        ["test", *BASELINE, "--name", "never_trained", "--ckpt_path", "last"],
        "--ckpt_path last: no lightning_logs/never_trained",
    ),
    "other architecture": (
        [
            "test",
            "--config",
            str(CONFIGS / "wide.yaml"),
            "--data.data_dir",
            str(DATA_DIR),
            "--ckpt_path",
            "lightning_logs/baseline/version_0/checkpoints/last.ckpt",
        ],
        "net.layers.conv1.weight is (10, 1, 5, 5) in the checkpoint and (20, 1, 5, 5) in the model",
    ),
    "fit without a model": (["fit", "--data.data_dir", str(DATA_DIR)], "model: no model given; give a config"),
    "summary without a model": (["summary"], "model: no model given; give a config"),
    "negative lr": (["fit", *BASELINE, "--model.lr", "-0.1"], "model.lr: -0.1 is not allowed; use a learning rate > 0"),
    "zero lr": (["fit", *BASELINE, "--model.lr", "0"], "model.lr: 0.0 is not allowed"),
    "infinite lr": (["fit", *BASELINE, "--model.lr", ".inf"], "model.lr: .inf is not allowed"),  # as written
    "nan lr": (["fit", *BASELINE, "--model.lr", ".nan"], "model.lr: .nan is not allowed"),
    "negative momentum": (
        ["fit", *BASELINE, "--model.momentum", "-1"],
        "model.momentum: -1.0 is not allowed; use a number in [0, 1)",
    ),
    "momentum 2": (["fit", *BASELINE, "--model.momentum", "2"], "model.momentum: 2.0 is not allowed"),
    "momentum 1": (
        ["fit", "--config", str(CONFIGS / "keras_relu.yaml"), "--model.momentum", "1"],
        "model.momentum: 1.0 is not allowed",
    ),
    "config folder": (["fit", "--config", "a_folder"], "a_folder: a folder, not a config file"),
    "config not utf-8": (["fit", "--config", "latin1.yaml"], "latin1.yaml: not a text file"),
    "summary not utf-8": (["summary", "--config", "latin1.yaml"], "latin1.yaml: not a text file"),
    "data folder through a file": (
        ["data", "--data-dir", "afile/x"],
        "the data folder: afile/x/MNIST/raw cannot be written (afile is not a folder)",
    ),
    "fit's data folder through a file": (
        ["fit", "--config", str(CONFIGS / "baseline.yaml"), "--data.data_dir", "afile/x"],
        "the data folder: afile/x/MNIST/raw cannot be written (afile is not a folder)",
    ),
    "default_root_dir, which lab-cnn's logger would not use": (
        ["fit", *BASELINE, "--trainer.default_root_dir", "elsewhere"],
        "trainer.default_root_dir: 'elsewhere' is not allowed: a run's logs and checkpoints go to lightning_logs/",
    ),
    "data folder empty": (["data", "--data-dir", ""], "the data folder: '' is not allowed"),
    "config indented by a tab": (
        ["fit", "--config", "tab.yaml"],
        "tab.yaml: not valid YAML (line 2, column 1: found character '\\t' that cannot start any token)",
    ),
    "config holding itself": (
        ["fit", "--config", "loop.yaml"],
        "loop.yaml: not a config file lab-cnn can read (line 1, column 10: an alias inside what its anchor names",
    ),
    "config of binary data, which the parser took as a list of numbers": (
        ["fit", *BASELINE, "--config", "binary.yaml"],
        "binary.yaml: not a config file lab-cnn can read (line 3, column 19: binary data (!!binary) is not a value",
    ),
    "hidden units as binary data (were 53 and 48 wide)": (
        ["fit", *BASELINE, "--model.hidden_units", "!!binary NTA="],
        "model.hidden_units: '!!binary NTA=' is not allowed; binary data (!!binary) is not a value lab-cnn takes",
    ),
    "hidden units as a set (which has no order; was taken as a list in the set's order)": (
        ["summary", *BASELINE, "--model.hidden_units", "!!set {50, 20}"],
        "model.hidden_units: '!!set {50, 20}' is not allowed; a set (!!set) is not a value lab-cnn takes",
    ),
    "config of a number in base 8 (was 15 hidden units)": (
        ["summary", *BASELINE, "--config", "octal.yaml"],
        "octal.yaml: not a config file lab-cnn can read (line 3, column 19: YAML reads 017 in base 8, as 15; "
        "write 15, or '017' for a text)",
    ),
    "config of a number in base 60 (was 90 hidden units)": (
        ["summary", *BASELINE, "--config", "base60.yaml"],
        "base60.yaml: not a config file lab-cnn can read (line 3, column 24: YAML reads 1:30 in base 60, as 90",
    ),
    "conv channels in base 8 (were 8 and 16)": (
        ["summary", *BASELINE, "--model.conv_channels", "[010, 020]"],
        "model.conv_channels: '[010, 020]' is not allowed",
    ),
    "hidden units 1:30 alone on the command line (were 90, read by the parser's own YAML)": (
        ["summary", *BASELINE, "--model.hidden_units", "1:30"],
        "model.hidden_units: '1:30' is not allowed; YAML reads it in base 60, as 90: write 90",
    ),
    "epochs 017 alone on the command line (were 17, where a config's 017 is 15)": (
        ["fit", *BASELINE, "--trainer.max_epochs=017"],
        "trainer.max_epochs: '017' is not allowed; YAML reads it in base 8, as 15, where this option would be 17: "
        "write 15 or 17",
    ),
    "a hidden layer appended in base 60 (was 110 wide)": (
        ["summary", *BASELINE, "--model.hidden_units", "[20]", "--model.hidden_units+", "1:50"],
        "model.hidden_units: '1:50' is not allowed; YAML reads it in base 60, as 110: write 110",
    ),
    "a callback's patience in base 60 (was 90 epochs)": (
        ["summary", *BASELINE, "--trainer.callbacks+", "EarlyStopping", "--trainer.callbacks.monitor", "val/loss"]
        + ["--trainer.callbacks.patience", "1:30"],
        "trainer.callbacks.patience: '1:30' is not allowed; YAML reads it in base 60, as 90: write 90",
    ),
    "hidden units 017 after YAML's document start (were 15)": (
        ["summary", *BASELINE, "--model.hidden_units", "--- 017"],
        "model.hidden_units: '--- 017' is not allowed; YAML reads it in base 8, as 15: write 15",
    ),
    "hidden units 017 before a comment (were 15)": (
        ["summary", *BASELINE, "--model.hidden_units", "017 # fifteen?"],
        "model.hidden_units: '017 # fifteen?' is not allowed; YAML reads it in base 8, as 15: write 15",
    ),
    "a quoted hidden layer in base 60 in a config (was 90 wide: the parser reads a text for a number again)": (
        ["summary", *BASELINE, "--config", "quoted.yaml"],
        "quoted.yaml: model.init_args.hidden_units.1: '1:30' is not allowed; YAML reads it in base 60, as 90",
    ),
    "a quoted hidden layer in base 8 in a command-line list (was 17 wide)": (
        ["summary", *BASELINE, "--model.hidden_units", "[20, '017']"],
        "model.hidden_units.1: '017' is not allowed; YAML reads it in base 8, as 15, where this option would be 17",
    ),
    "a quoted hidden layer in base 60 with --print_config (printed as 90 wide, exit 0)": (
        ["fit", *BASELINE, "--config", "quoted.yaml", "--print_config"],
        "quoted.yaml: model.init_args.hidden_units.1: '1:30' is not allowed; YAML reads it in base 60, as 90",
    ),
    "a seed NumPy refuses with --print_config=skip_default (printed, exit 0)": (
        ["fit", *BASELINE, "--print_config=skip_default", "--seed_everything", "-1"],
        "seed_everything: -1 is not allowed; use a whole number in [0, 4294967295]",
    ),
    "a momentum the model refuses, with --print_config (printed, exit 0)": (
        ["fit", *BASELINE, "--model.momentum", "2", "--print_config"],
        "model.momentum: 2.0 is not allowed; use a number in [0, 1), e.g. 0.5",
    ),
    "a kernel the net refuses, with --print_config first (printed, exit 0)": (
        ["fit", "--print_config", *BASELINE, "--model.kernel_size", "0"],
        "error: model.kernel_size: 0 is not allowed; use a whole number >= 1",
    ),
    "conv channels past 2**63 (a traceback: torch could not count them)": (
        ["summary", *BASELINE, "--model.conv_channels", f"[10, {10**23}]"],
        f"error: model.conv_channels: conv2's weight of shape ({10**23}, 10, 5, 5) would bring the net to 2.51e+25",
    ),
    "a kernel past 2**63 (a traceback: torch could not count it)": (
        ["fit", *BASELINE, "--model.kernel_size", str(10**23)],
        f"error: conv1: a {10**23}x{10**23} kernel does not fit its 28x28 input",
    ),
    "a negative learning rate in scientific notation (said: argument --model: expected one argument)": (
        ["summary", *BASELINE, "--model.lr", "-1e-3"],
        "model.lr: -0.001 is not allowed; use a learning rate > 0, e.g. 0.01",
    ),
    "a negative seed with an underscore (said: argument --seed_everything: expected one argument)": (
        ["summary", *BASELINE, "--seed_everything", "-1_000"],
        "seed_everything: -1000 is not allowed; use a whole number in [0, 4294967295]",
    ),
    "the trainer's settings as a mapping with a number in base 8 (said '{max_epochs' is not allowed)": (
        ["summary", *BASELINE, "--trainer", "{max_epochs: 017}"],
        "trainer: '{max_epochs: 017}' is not allowed; YAML reads 017 in base 8, as 15; write 15, or '017' for a text",
    ),
    "a list of hidden layers with one in base 60 (said: expected int or list of int)": (
        ["summary", *BASELINE, "--model.init_args.hidden_units", "[20, 1:30]"],
        "model.hidden_units: '[20, 1:30]' is not allowed; YAML reads 1:30 in base 60, as 90",
    ),
    "a scheduler's settings with a step in base 60 (said: expected ... or null)": (
        ["summary", *BASELINE, "--lr_scheduler", "{class_path: StepLR, init_args: {step_size: 1:30}}"],
        "lr_scheduler: '{class_path: StepLR, init_args: {step_size: 1:30}}' is not allowed; YAML reads 1:30 in base 60",
    ),
    "a key given twice in a command-line mapping (the last one won)": (
        ["summary", *BASELINE, "--data", "{batch_size: 64, batch_size: 32}"],
        "data: '{batch_size: 64, batch_size: 32}' is not allowed; the key 'batch_size' is given twice",
    ),
    "a callback's patience quoted in base 60 (said: unknown key)": (
        ["summary", *BASELINE, "--trainer.callbacks+", "EarlyStopping", "--trainer.callbacks.monitor", "val/loss"]
        + ["--trainer.callbacks.patience", "'1:30'"],
        "trainer.callbacks.patience: '1:30' is not allowed; YAML reads it in base 60, as 90",
    ),
    "two hidden layers appended, the first in base 8 (was 17 wide)": (
        ["summary", *BASELINE, "--model.hidden_units+", "017", "--model.hidden_units+", "5"],
        "model.hidden_units: '017' is not allowed; YAML reads it in base 8",
    ),
    "learning rate in base 60 (was 1.5)": (
        ["summary", *BASELINE, "--model.init_args.lr", "0:01.5"],
        "model.init_args.lr: '0:01.5' is not allowed; YAML reads it in base 60, as 1.5: write 1.5",
    ),
    "a key given by two merged mappings (PyYAML let the later win)": (
        ["summary", *BASELINE, "--config", "merge_both.yaml"],
        "merge_both.yaml: not valid YAML (line 3, column 31: the key 'hidden_units' is given by two of the mappings",
    ),
    "summary config with a number for a key": (
        ["summary", "--config", "number_key.yaml"],
        "number_key.yaml: not a config file lab-cnn can read (line 3, column 5: the key 5 is not a text",
    ),
    "config a FIFO": (["fit", "--config", "fifo.yaml"], "fifo.yaml: not a regular file; a config file is YAML text"),
    "summary config a FIFO": (["summary", "--config", "fifo.yaml"], "fifo.yaml: not a regular file"),
    "summary config 20,000 deep": (["summary", "--config", "deep.yaml"], "deep.yaml: not a config file lab-cnn can"),
    "summary negative seed": (
        ["summary", *BASELINE, "--seed_everything", "-1"],
        "seed_everything: -1 is not allowed; use a whole number in [0, 4294967295]",
    ),
    "summary list yaml": (
        ["summary", "--config", "list.yaml"],
        "list.yaml: a config file is a mapping of keys to values, not a YAML list",
    ),
    "fit list yaml": (["fit", "--config", "list.yaml"], "list.yaml: a config file is a mapping"),
    "accelerator mps": (
        ["fit", *BASELINE, "--trainer.accelerator", "mps"],
        "trainer.accelerator: 'mps' but this machine has none",
    ),
    "accelerator tpu": (
        ["fit", *BASELINE, "--trainer.accelerator", "tpu"],
        "trainer.accelerator: 'tpu' but this machine has none",
    ),
    "devices word": (
        ["fit", *BASELINE, "--trainer.accelerator", "cpu", "--trainer.devices", "x"],
        "trainer: `devices` selected with `CPUAccelerator` should be an int > 0",
    ),
    "unknown accelerator": (
        ["fit", *BASELINE, "--trainer.accelerator", "hpu"],
        "trainer: You selected an invalid accelerator name",
    ),
    "unknown strategy": (
        ["fit", *BASELINE, "--trainer.strategy", "nope"],
        "trainer: You selected an invalid strategy name",
    ),
    "study of a folder": (["study", "a_folder"], "a_folder: a folder, not a study file"),
    "report of a folder without a study": (["report", "a_folder"], "a_folder: no study.yaml here"),
    "report of a study.yaml that is a folder": (
        ["report", "reports/study_yaml_a_folder"],
        "reports/study_yaml_a_folder/study.yaml: a folder, not a study record",
    ),
    "report of a file": (["report", "afile"], "afile: not a folder; give a study's report folder"),
    "unknown model class": (
        ["fit", "--model", "nowhere.Net", "--data.data_dir", str(DATA_DIR)],
        "model: 'nowhere.Net' is not a class that can be imported",
    ),
    "model a function, not a class": (
        ["fit", "--model", "lab_cnn.api.fit", "--trainer.max_epoch", "1", "--data.data_dir", str(DATA_DIR)],
        "model: 'lab_cnn.api.fit' is not allowed; expected Classifier or null",
    ),
    "precision 7": (
        ["fit", *BASELINE, "--trainer.precision", "7"],
        "trainer.precision: '7' is not allowed; expected one of 64, 32, 16",
    ),
    "summary typo": (
        ["summary", "--config", str(CONFIGS / "baseline.yaml"), "--model.kernel_siz", "3"],
        "model.kernel_siz: unknown key; did you mean model.kernel_size?",
    ),
    "fit typo": (
        ["fit", *BASELINE, "--trainer.max_epoch", "3"],
        "trainer.max_epoch: unknown key; did you mean trainer.max_epochs?",
    ),
    "typo in a config file": (["fit", "--config", "typo.yaml"], "did you mean model.kernel_size?"),
    "bad value of a list knob": (
        ["fit", *BASELINE, "--model.hidden_units", "[20, x]"],
        "model.hidden_units: \"[20, 'x']\" is not allowed; expected int or list of int",
    ),
    "bad literal": (
        ["fit", *BASELINE, "--data.normalize", "zscore"],
        "data.normalize: 'zscore' is not allowed; expected one of 'standard', 'unit'",
    ),
    "name outside": (
        ["fit", *BASELINE, "--name", "../x"],
        "--name: '../x' is not allowed; use a folder name inside lightning_logs/",
    ),
    "absolute name": (["fit", *BASELINE, "--name", "/tmp/x"], "--name: '/tmp/x' is not allowed"),
    "predict path missing": (
        [
            "predict",
            *BASELINE,
            "--ckpt_path",
            "lightning_logs/baseline/version_0/checkpoints/last.ckpt",
            "--data.predict_path",
            "no_such_folder",
        ],
        "data.predict_path: 'no_such_folder' does not exist",
    ),
    "predict folder without images": (
        ["predict", *BASELINE, "--ckpt_path", LAST, "--data.predict_path", "a_folder"],
        "data.predict_path: no readable digit images in 'a_folder'",
    ),  # fmt: skip
    "negative seed": (
        ["fit", *BASELINE, "--seed_everything", "-1"],
        "seed_everything: -1 is not allowed; use a whole number in [0, 4294967295]",
    ),  # fmt: skip
    "huge data seed": (
        ["fit", *BASELINE, "--data.seed", str(10**20)],
        "data.seed: 100000000000000000000 is not allowed",
    ),
    "huge batch": (["fit", *BASELINE, "--data.batch_size", str(10**20)], "use a whole number in [1, 60000]"),
    "weights not tensors": (["test", *BASELINE, "--ckpt_path", "not_tensors.ckpt"], "holds no model weights"),
    "empty ckpt path": (["test", *BASELINE, "--ckpt_path", ""], "--ckpt_path: '' is not allowed"),
    "another activation than trained": (
        ["test", *BASELINE, "--model.activation", "tanh", "--ckpt_path", LAST],
        "was trained with model.activation 'relu' and this command has 'tanh'",
    ),  # fmt: skip
    "another normalization than trained": (
        ["test", *BASELINE, "--data.normalize", "unit", "--ckpt_path", LAST],
        "was trained with data.normalize 'standard' and this command has 'unit'",
    ),  # fmt: skip
    "another pooling, resumed": (
        ["fit", *BASELINE, "--model.pool", "avg", "--ckpt_path", "last"],
        "trained with model.pool 'max' and this command has 'avg'",
    ),  # fmt: skip
    "accumulate": (
        ["fit", *BASELINE, *steps_per_call(8), "--trainer.accumulate_grad_batches", "4"],
        "trainer.accumulate_grad_batches: 4 is not allowed",
    ),
    "clip": (
        ["fit", *BASELINE, *steps_per_call(4), "--trainer.gradient_clip_val", "1.0"],
        "trainer.gradient_clip_val: 1.0 is not allowed",
    ),
    "train on no batch": (
        ["fit", *BASELINE, "--trainer.limit_train_batches", "0"],
        "trainer.limit_train_batches: 0 leaves no batch of the 469",
    ),
    "test on no batch after a fit": (
        ["fit", *BASELINE, "--trainer.limit_test_batches", "0.0"],
        "trainer.limit_test_batches: 0.0 leaves no batch of the 79",
    ),
    "validate on a sliver of a batch": (
        ["fit", *BASELINE, "--data.val_size", "5000", "--trainer.limit_val_batches", "0.001"],
        "trainer.limit_val_batches: 0.001 leaves no batch of the 40",
    ),
    "overfit on a sliver of a batch": (
        ["fit", *BASELINE, "--trainer.overfit_batches", "0.0001"],
        "trainer.overfit_batches: 0.0001 leaves no batch of the 469",
    ),
    "validate a checkpoint on no batch": (
        ["validate", *BASELINE, "--ckpt_path", LAST, "--trainer.limit_val_batches", "0"],
        "trainer.limit_val_batches: 0 leaves no batch",
    ),
    "predict no batch": (
        ["predict", *BASELINE, "--ckpt_path", LAST, "--trainer.limit_predict_batches", "0"],
        "trainer.limit_predict_batches: 0 leaves no batch",
    ),
    "name dot": (["fit", *BASELINE, "--name", "."], "--name: '.' is not allowed"),
    "name of the keras folder": (["fit", *BASELINE, "--name", "keras"], "--name: 'keras' is not allowed"),
    "name too long": (["fit", *BASELINE, "--name", "a/" + "x" * 300], "is not allowed; use a folder name"),
    "empty config": (["fit", "--config", "empty.yaml"], "empty.yaml: the config file is empty"),
    "section not a mapping": (
        ["fit", *BASELINE, "--config", "trainer5.yaml"],
        "trainer5.yaml: trainer: 5 is not allowed",
    ),
    "unknown section": (["fit", *BASELINE, "--config", "unknown_section.yaml"], "foo: unknown key"),
    "model class as a mapping": (
        ["fit", *BASELINE, "--model", '{"class_path": "keras_parity.KerasNet"}'],
        "names keras_parity.KerasNet: one run trains one model",
    ),  # fmt: skip
    "two model configs": (
        ["fit", "--config", str(CONFIGS / "baseline.yaml"), "--config", str(CONFIGS / "keras_relu.yaml")],
        "baseline.yaml names the model lab_cnn.LabNet and",
    ),
    "two model configs reversed": (
        ["fit", "--config", str(CONFIGS / "keras_relu.yaml"), "--config", str(CONFIGS / "baseline.yaml")],
        "keras_relu.yaml names the model keras_parity.KerasNet and",
    ),
    "summary of two model configs": (
        ["summary", "--config", str(CONFIGS / "keras_tanh.yaml"), "--config", str(CONFIGS / "avgpool.yaml")],
        "keras_tanh.yaml names the model keras_parity.KerasNet and",
    ),
    "model switched on the command line": (
        ["fit", *BASELINE, "--model", "keras_parity.KerasNet"],
        "baseline.yaml names the model lab_cnn.LabNet and --model keras_parity.KerasNet names",
    ),
    "unknown command": (["tset", *BASELINE], "tset: unknown command; did you mean test?"),
    "batch size word": (
        ["fit", *BASELINE, "--data.batch_size", "many"],
        "data.batch_size: 'many' is not allowed; expected int",
    ),
    "max epochs -1": (["fit", *BASELINE, "--trainer.max_epochs", "-1"], "trainer.max_epochs: -1 is not allowed"),
    "steps per call": (["fit", *BASELINE, *steps_per_call(0)], "StepsPerCall steps: 0 is not allowed"),
    "study seeds": (
        ["study", str(CONFIGS / "studies" / "pooling.yaml"), "--seeds", "0"],
        "--seeds: '0' is not allowed",
    ),
}
KERAS_MISTAKES = {
    "negative seed": (
        ["--mode", "train", "--seed", "-1"],
        "--seed: '-1' is not allowed; use a whole number in [0, 4294967295]",
    ),
    "huge seed": (["--mode", "train", "--seed", str(2**32)], "--seed: '4294967296' is not allowed"),
    "negative epochs in scientific notation (said: argument --epochs: expected one argument)": (
        ["--mode", "train", "--epochs", "-1e3"],
        "--epochs: '-1e3' is not allowed; use a whole number >= 1",
    ),
    "model path without .keras": (
        ["--mode", "train", "--model_path", "models/noext"],
        "'models/noext' is not allowed; Keras 3 saves models as .keras",
    ),
    "model path under a file": (
        ["--mode", "train", "--model_path", "afile/m.keras"],
        "--model_path: afile cannot be written (afile is not a folder)",
    ),
    "model path is a folder": (["--mode", "train", "--model_path", "a_folder.keras"], "a_folder.keras is a folder"),
    "model path exists": (
        ["--mode", "train", "--model_path", "fake.keras"],
        "--model_path: fake.keras exists; give another file name, or --overwrite to replace it",
    ),
    "overwrite a folder": (
        ["--mode", "train", "--model_path", "a_folder.keras", "--overwrite"],
        "a_folder.keras is a folder",
    ),
    "overwrite a device": (
        ["--mode", "train", "--model_path", "device.keras", "--overwrite"],
        "--model_path: device.keras is not a regular file",
    ),
    "run inside a version folder": (
        ["--mode", "train", "--run", "x/version_0/y"],
        "--run: 'x/version_0/y' is not allowed; it is inside a run's version folder",
    ),
    "run outside": (["--mode", "train", "--run", "../x"], "--run: '../x' is not allowed"),
    "run folder is a file": (
        ["--mode", "train", "--run", "afile"],
        "--run: lightning_logs/keras/afile cannot be written",
    ),
    "model path in /proc": (
        ["--mode", "train", "--model_path", "/proc/m.keras"],
        "--model_path: /proc cannot be written",
    ),
    "missing model": (
        ["--mode", "test", "--model_path", "missing.keras"],
        "--model_path: missing.keras does not exist",
    ),
    "model that is a device": (
        ["--mode", "test", "--model_path", "device.keras"],
        "device.keras is not a regular file",
    ),
    "not a keras model": (["--mode", "test", "--model_path", "fake.keras"], "fake.keras is not a readable Keras model"),
    "a text file named .keras": (
        ["--mode", "test", "--model_path", "typo.yaml.keras"],
        "typo.yaml.keras is not a .keras model (the zip archive Keras' model.save writes)",
    ),
    "batch size 0": (
        ["--mode", "train", "--batch-size", "0"],
        "--batch-size: '0' is not allowed; use a whole number in [1, 60000]",
    ),
    "seed in base 8": (
        ["--mode", "train", "--seed", "017"],
        "--seed: '017' is not allowed; YAML, which reads lab-cnn's configs, takes it in base 8, as 15: write 15 or 17",
    ),
    "epochs in base 60": (["--mode", "train", "--epochs", "1:30"], "takes it in base 60, as 90: write 90"),
    "a digit int() does not read": (["--mode", "train", "--conv-layers", "²"], "--conv-layers: '²' is not allowed"),
    "conv layers -1": (["--mode", "train", "--conv-layers", "-1"], "--conv-layers: '-1' is not allowed"),
    "epochs 2.5": (["--mode", "train", "--epochs", "2.5"], "--epochs: '2.5' is not allowed"),
    "batch size over the training images": (
        ["--mode", "train", "--batch-size", "60001"],
        "--batch-size: '60001' is not allowed; use a whole number in [1, 60000]",
    ),
    "unknown activation": (["--mode", "train", "--activation", "swish"], "invalid choice: 'swish'"),
    "unknown option": (["--mode", "train", "--bogus"], "unrecognized arguments: --bogus"),
}


@pytest.fixture(scope="module")
def refused(trained) -> dict[str, tuple[subprocess.CompletedProcess, list[str], list[str]]]:
    """Every mistake above, with lightning_logs/ and models/ before and after, each command called in this
    process, one after another (lab_cnn.cli.main, which the command and the API share; keras_parity.cli.main).
    keras-parity refuses before it imports TensorFlow, unless Keras must try to open the file: the others are
    refused here with keras_parity.keras_model (TensorFlow's only way in) unimportable, so that a refusal which
    reached it would fail its test, whatever this process imported before."""
    (trained / "typo.yaml").write_text("model:\n  class_path: lab_cnn.LabNet\n  init_args:\n    kernel_siz: 3\n")
    with zipfile.ZipFile(trained / "fake.keras", "w") as fake:  # a zip archive, but no model in it
        fake.writestr("notes.txt", "not a model")
    (trained / "typo.yaml.keras").write_text((trained / "typo.yaml").read_text())
    (trained / "a_folder.keras").mkdir(exist_ok=True)
    (trained / "device.keras").symlink_to(os.devnull)
    before = snapshot(trained)
    results = {name: run_in_process(*args, cwd=trained) for name, (args, _) in MISTAKES.items()}
    for name, (args, message) in KERAS_MISTAKES.items():
        with pytest.MonkeyPatch.context() as patch:
            if "readable Keras model" not in message:
                patch.setitem(sys.modules, "keras_parity.keras_model", None)  # importing it raises ImportError
            result = run_in_process(*args, "--data-dir", str(DATA_DIR), cwd=trained, command="keras_parity")
        results[f"keras-parity {name}"] = result
    return {name: (result, before, snapshot(trained)) for name, result in results.items()}


@pytest.mark.parametrize("name", [*MISTAKES, *(f"keras-parity {k}" for k in KERAS_MISTAKES)])
def test_a_mistake_gets_one_line_and_exit_2_and_leaves_nothing(name: str, refused) -> None:
    result, before, after = refused[name]
    keras = name.startswith("keras-parity ")
    expected = KERAS_MISTAKES[name.removeprefix("keras-parity ")][1] if keras else MISTAKES[name][1]
    line = one_line_error(result, "keras-parity" if keras else "lab-cnn")
    assert expected in line, line
    assert after == before  # nothing new under lightning_logs/ or models/


RECORDED = yaml.safe_load((Path(__file__).with_name("recorded_parse_errors.yaml")).read_text())


@pytest.mark.parametrize("case", RECORDED, ids=[case["expected"].split(":")[0] for case in RECORDED])
def test_parse_errors_are_rewritten_from_recorded_messages(case: dict[str, str]) -> None:
    keys = ["model.kernel_size", "model.hidden_units", "trainer.max_epochs", "name"]
    assert describe_parse_error(case["message"], keys) == case["expected"]


def test_a_run_refused_after_its_trainer_is_built_prints_its_one_line_alone(tmp_path) -> None:
    """Lightning's lines of a Trainer being built ("GPU available: ...") are shown with a run that goes on,
    not before the refusal of one that does not (the batch limits are checked on the built Trainer)."""
    refused = run(*fit_args("baseline.yaml", "--trainer.limit_train_batches", "0"), cwd=tmp_path, env={})
    assert refused.stderr.strip() == one_line_error(refused) and "leaves no batch" in refused.stderr
    accepted = run(*fit_args("baseline.yaml", *SHORT), cwd=tmp_path, env={})  # processes: Lightning's console
    assert accepted.returncode == 0 and "GPU available: " in accepted.stderr, accepted.stderr[-2000:]


def test_a_runs_checkpoint_without_a_config_is_told_its_runs_config_and_that_config_then_works(
    trained, tmp_path
) -> None:
    """The config fit saved beside a checkpoint, named by the refusal whatever path leads to the checkpoint (a
    link, a folder name with a space), and taken after --ckpt_path too: its ``ckpt_path: null`` is no choice."""
    run_dir = tmp_path / "lightning_logs/with space/version_0"
    shutil.copytree(trained / "lightning_logs/baseline/version_0", run_dir)
    (tmp_path / "link.ckpt").symlink_to(run_dir / "checkpoints/last.ckpt")
    for ckpt in ("link.ckpt", "lightning_logs/with space/version_0/checkpoints/last.ckpt"):
        refused = run_in_process("test", "--ckpt_path", ckpt, cwd=tmp_path)
        hint = "give the config its run saved beside the checkpoint: --config 'lightning_logs/with space/version_0/"
        assert f"{hint}config.yaml'" in one_line_error(refused)
    config = str(run_dir / "config.yaml")
    tested = run_in_process(
        "test", "--ckpt_path", "link.ckpt", "--config", config, "--trainer.limit_test_batches", "2", cwd=tmp_path
    )
    assert tested.returncode == 0 and "Test set: " in tested.stdout, tested.stderr[-2000:]


def test_a_log_folder_that_cannot_be_written_gets_one_line(tmp_path) -> None:
    (tmp_path / "lightning_logs").write_text("a file where the log folder should be")  # root may write anywhere else
    line = one_line_error(run(*fit_args("baseline.yaml", *SHORT), cwd=tmp_path))
    assert "lightning_logs" in line and (tmp_path / "lightning_logs").read_text().startswith("a file")


def test_a_run_whose_loss_turns_nan_stops_at_once_and_keeps_its_logs(tmp_path) -> None:
    result = run(
        *fit_args(
            "baseline.yaml",
            "--model.lr",
            "1e9",
            "--model.momentum",
            "0.9",
            "--trainer.max_epochs",
            "3",
            "--inspect",
            "false",
            "--trainer.enable_progress_bar",
            "false",
        ),
        cwd=tmp_path,
    )
    line = one_line_error(result)
    step = int(re.search(r"the training loss became (?:nan|inf) at optimizer step (\d+) \(epoch 1\)", line).group(1))
    assert step < 50 and "try a smaller --model.lr" in line
    assert "Test set:" not in result.stdout
    run_dir = tmp_path / "lightning_logs" / "baseline" / "version_0"
    assert list(run_dir.glob("events.out.tfevents.*")) and (run_dir / "config.yaml").is_file()  # the evidence stays
    assert not (run_dir / "checkpoints").exists()  # no epoch ended


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path) -> None:
    marker = tmp_path / "code-ran"
    crafted = tmp_path / "crafted.ckpt"
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"""
import os, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
torch.save({{"state_dict": {{}}, "payload": Payload()}}, "{crafted}")
""",
        ],
        check=True,
    )
    result = run("test", *BASELINE, "--ckpt_path", str(crafted), cwd=tmp_path)
    assert "refused" in one_line_error(result) and "could run code" in one_line_error(result)
    assert not marker.exists() and not (tmp_path / "lightning_logs").exists()


def test_keras_parity_checks_its_arguments_before_training(tmp_path) -> None:
    """A model path Keras cannot save to is refused at once, not after the whole training."""
    start = time.perf_counter()
    result = run(
        "--mode",
        "train",
        "--epochs",
        "50",
        "--model_path",
        "models/noext",
        "--data-dir",
        str(DATA_DIR),
        cwd=tmp_path,
        command="keras_parity",
    )
    one_line_error(result, "keras-parity")
    assert time.perf_counter() - start < 30 and not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize("damage", ["missing", "empty", "truncated", "corrupted"])
def test_bad_data_files_get_one_line(damage: str, tmp_path, monkeypatch) -> None:
    raw = mnist.raw_dir(tmp_path / "data")
    shutil.copytree(mnist.raw_dir(DATA_DIR), raw)
    path = raw / "train-images-idx3-ubyte"
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes({"empty": b"", "truncated": data[:1000], "corrupted": data[:-1] + b"\x01"}[damage])
    # a missing file is fetched when a source answers; here pip (a child process, of this environment) finds
    # no index, and torchvision's hosts do not answer on this machine, so nothing can fetch it
    for name, value in {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}.items():
        monkeypatch.setenv(name, value)
    result = run_in_process(*fit_args("baseline.yaml", "--data.data_dir", str(tmp_path / "data")), cwd=tmp_path)
    line = one_line_error(result)
    assert "train-images-idx3-ubyte" in line
    if damage == "missing":
        assert "no source gave verified MNIST files" in line and "by hand" in line
    else:
        assert mnist.MD5["train-images-idx3-ubyte"] in line and "lab-cnn data" in line
    assert not (tmp_path / "lightning_logs").exists()
    monkeypatch.setitem(sys.modules, "keras_parity.keras_model", None)  # the data is checked before TensorFlow
    train = ["--mode", "train", "--data-dir", str(tmp_path / "data")]
    keras = run_in_process(*train, cwd=tmp_path, command="keras_parity")
    assert "train-images-idx3-ubyte" in one_line_error(keras, "keras-parity")


def test_two_runs_of_a_config_give_identical_metrics(tmp_path) -> None:
    args = fit_args(
        "baseline.yaml",
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_train_batches",
        "30",
        "--inspect",
        "false",
        "--trainer.limit_val_batches",
        "10",
        "--trainer.limit_test_batches",
        "10",
    )
    first, second = (run(*args, cwd=tmp_path).stdout for _ in range(2))
    runs = tmp_path / "lightning_logs" / "baseline"
    assert scalars(runs / "version_0", with_steps=True) == scalars(runs / "version_1", with_steps=True)
    assert len(scalars(runs / "version_0")["train/acc"]) == 2
    assert re.search("Test set:.*", first).group() == re.search("Test set:.*", second).group()


RESUMABLE = fit_args(
    "baseline.yaml",
    "--trainer.max_epochs",
    "3",
    "--trainer.limit_train_batches",
    "150",
    "--inspect",
    "false",
    "--trainer.enable_progress_bar",
    "false",
)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[str, Path]:
    """The Test line and run folder of an uninterrupted run of RESUMABLE."""
    folder = tmp_path_factory.mktemp("ref")
    reference = run(*RESUMABLE, cwd=folder)
    return re.search("Test set:.*", reference.stdout).group(), folder / "lightning_logs/baseline/version_0"


@pytest.mark.long  # an uninterrupted run, then a run killed and resumed, per signal (78 s for SIGKILL in the suite)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_run_resumes_from_last_ckpt_to_the_same_result(sig: signal.Signals, uninterrupted, tmp_path) -> None:
    expected, reference_dir = uninterrupted
    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "lab_cnn", *RESUMABLE],
        cwd=killed_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
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

    resumed = run(*RESUMABLE, "--ckpt_path", "last", cwd=killed_dir)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Resuming from {Path('lightning_logs/baseline/version_0/checkpoints/last.ckpt')}" in resumed.stderr
    assert re.search("Test set:.*", resumed.stdout).group() == expected
    reference_metrics = scalars(reference_dir)
    resumed_metrics = scalars(killed_dir / "lightning_logs/baseline/version_0")
    assert resumed_metrics["val/acc"][-1] == reference_metrics["val/acc"][-1]
    assert resumed_metrics["train/loss"][-1] == reference_metrics["train/loss"][-1]


def test_two_fits_started_together_get_their_own_version_folders(tmp_path) -> None:
    args = [sys.executable, "-m", "lab_cnn", *fit_args("baseline.yaml", *SHORT)]
    processes = [
        subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    runs = sorted((tmp_path / "lightning_logs/baseline").iterdir())
    assert [r.name for r in runs] == ["version_0", "version_1"]
    for r in runs:
        assert (r / "checkpoints/last.ckpt").is_file() and (r / "config.yaml").is_file()
        assert len(list(r.glob("events.out.tfevents.*"))) == 2  # one fit, one test: nobody else's


def test_two_data_commands_at_once_leave_verified_files(tmp_path) -> None:
    shutil.copytree(DATA_DIR / "mirror", tmp_path / "data" / "mirror")  # the wheel is cached, not downloaded
    args = [sys.executable, "-m", "lab_cnn", "data", "--data-dir", str(tmp_path / "data")]
    processes = [
        subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    assert mnist.problems(tmp_path / "data") == []
    assert not [p for p in mnist.raw_dir(tmp_path / "data").iterdir() if p.name.startswith(".")]


# TensorFlow 2.20+ loaded before triton crashed the process (exit 139, no message) in every one of these.
ONE_PROCESS = {
    "tensorflow, then lab_cnn": "import tensorflow; import lab_cnn; from lab_cnn import LabNet; LabNet()",
    "keras, then keras_parity": "import keras; import keras_parity; keras_parity.to_torch(keras_parity.build_model())",
    "lab_cnn, then tensorflow, then Lightning": "import lab_cnn, tensorflow, lightning; lab_cnn.MNISTDataModule()",
    # backend "eager": TorchDynamo imports triton as inductor does (without compat.py, exit 139 either way) but
    # compiles no C++ (inductor's compile took 30 s more on a cold cache, as CI's always is)
    "keras_parity, keras, torch.compile": (
        "import keras_parity, keras, torch; torch.compile(abs, backend='eager')(torch.ones(2))"
    ),
}


@pytest.mark.parametrize("name", list(ONE_PROCESS))
def test_keras_and_torch_share_one_process_in_any_order(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", ONE_PROCESS[name] + "; print('both loaded')"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 0 and "both loaded" in result.stdout, (result.returncode, result.stderr[-1500:])


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path) -> None:
    """Lightning's DDP (2 processes, gloo) runs the baseline config; one run folder, all 10,000 tested."""
    ddp = [
        "--config",
        str(CONFIGS / "trainer" / "ddp_cpu.yaml"),
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "10",
    ]
    # a new interpreter (env given): DDP starts its other processes by running this one's command line again
    result = run(*fit_args("baseline.yaml", *ddp), cwd=tmp_path, env={})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert re.search(r"Accuracy: \d+/10000", result.stdout)
    assert [p.name for p in (tmp_path / "lightning_logs/baseline").iterdir()] == ["version_0"]
