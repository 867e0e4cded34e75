"""Slow: the lab's 5-epoch runs, reproduced (``pytest -m slow``; not part of ``make test``)."""

from __future__ import annotations

import re
import time

import pytest

from lab_cnn.documented import documented
from tests.helpers import fit_args, run

LAB_PYTORCH = {**documented()["pytorch"]["neuron_study"], **documented()["pytorch"]["pooling_study"]}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "lab_run"), [("baseline.yaml", "fc50"), ("fc25.yaml", "fc25"), ("avgpool.yaml", "avg")]
)
def test_pytorch_runs_land_within_half_a_point_of_the_lab(config: str, lab_run: str, tmp_path) -> None:
    start = time.perf_counter()
    result = run(*fit_args(config), cwd=tmp_path, timeout=3000)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    line = next(row for row in result.stdout.splitlines() if row.startswith("Test set:"))
    correct = int(re.search(r"Accuracy: (\d+)/10000", line).group(1))
    lab = LAB_PYTORCH[lab_run]["test_correct"]
    print(f"\n{config}: {line} | lab {lab}/10000 | {seconds:.0f} s")
    assert abs(correct - lab) / 100 <= 0.5


LAB_KERAS = {
    **documented()["keras"]["activation_study"],
    "one_conv": documented()["keras"]["conv_layer_study"]["one_conv"],
}
KERAS_RUNS = {
    "relu": [],
    "sigmoid": ["--activation", "sigmoid"],
    "tanh": ["--activation", "tanh"],
    "one_conv": ["--conv-layers", "1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(KERAS_RUNS))
def test_keras_runs_land_within_one_point_and_the_port_within_one_point_of_keras(variant: str, tmp_path) -> None:
    start = time.perf_counter()
    model = ["--model_path", f"models/{variant}.keras", "--data-dir", fit_args("baseline.yaml")[-1]]
    trained = run("--mode", "train", *model, *KERAS_RUNS[variant], cwd=tmp_path, command="keras_parity", timeout=3000)
    keras_seconds = time.perf_counter() - start
    assert trained.returncode == 0, trained.stderr
    tested = run("--mode", "test", *model, cwd=tmp_path, command="keras_parity")
    keras_acc = float(re.search(r"Test accuracy: ([\d.]+)%", tested.stdout).group(1))

    start = time.perf_counter()
    port = run(*fit_args(f"keras_{variant}.yaml"), cwd=tmp_path, timeout=3000)
    port_seconds = time.perf_counter() - start
    assert port.returncode == 0, port.stderr
    port_acc = int(re.search(r"Accuracy: (\d+)/10000", port.stdout).group(1)) / 100
    lab = 100 * LAB_KERAS[variant]["test_acc"]
    print(
        f"\nkeras {variant}: {keras_acc:.2f}% ({keras_seconds:.0f} s) | port {port_acc:.2f}% ({port_seconds:.0f} s) "
        f"| lab {lab:.2f}%"
    )
    assert abs(keras_acc - lab) <= 1.0
    assert abs(port_acc - keras_acc) <= 1.0
