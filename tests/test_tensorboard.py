"""What a fit leaves for TensorBoard, read back with TensorBoard's own reader and its real server, with
a Keras run beside it: one x-axis (optimizer steps) and one HParams table for both frameworks."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.helpers import DATA_DIR, fit_args, run, scalars

BATCHES = 150


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, str]:
    """A 2-epoch baseline run of 150 batches an epoch, and a 1-epoch Keras run of 8 batches beside it
    (lightning_logs/keras/k): the run folder and the lab line the fit printed."""
    cwd = tmp_path_factory.mktemp("fit")
    args = fit_args("baseline.yaml", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", str(BATCHES))
    result = run(*args, "--trainer.enable_progress_bar", "false", cwd=cwd)
    assert result.returncode == 0, result.stderr
    keras = ["--data-dir", str(DATA_DIR), "--model_path", "models/k.keras"]
    for mode in (["--mode", "train", "--epochs", "1", "--limit-batches", "8"], ["--mode", "test"]):
        assert run(*mode, *keras, cwd=cwd, command="keras_parity").returncode == 0
    line = next(line for line in result.stdout.splitlines() if line.startswith("Test set:"))
    return cwd / "lightning_logs" / "baseline" / "version_0", line


def events(run_dir: Path) -> EventMultiplexer:
    mux = EventMultiplexer(size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    mux.AddRunsFromDirectory(str(run_dir))
    mux.Reload()
    return mux


def tags(mux: EventMultiplexer, kind: str) -> set[str]:
    return {t for run_tags in mux.Runs().values() for t in run_tags.get(kind, [])}


@pytest.mark.long  # uses `fitted`: a 2-epoch run with every inspection and a Keras run (70 s in the suite)
def test_fit_logs_scalars_histograms_graph_images_and_hparams(fitted) -> None:
    run_dir, line = fitted
    mux = events(run_dir)
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "lr-SGD"} <= tags(mux, "scalars")
    histograms = tags(mux, "histograms")
    for name in ("conv1.weight", "conv2.bias", "fc1.weight", "fc2.weight"):
        assert f"weights/net.layers.{name}" in histograms and f"gradients/net.layers.{name}" in histograms
    [(run_name, _)] = mux.Runs().items()
    acc = mux.GetAccumulator(run_name)
    assert [e.step for e in acc.Histograms("weights/net.layers.conv1.weight")] == [0, 1]
    assert acc.Histograms("gradients/net.layers.fc1.weight")[-1].histogram_value.max > 0
    assert any(t["graph"] for t in mux.Runs().values())
    assert {"test/confusion_matrix", "test/misclassified", "test/conv1_filters"} <= tags(mux, "images")
    for tag in ("test/confusion_matrix", "test/misclassified", "test/conv1_filters"):
        image = acc.Images(tag)[-1]
        assert image.width > 50 and image.height > 50 and len(image.encoded_image_string) > 1000
    start = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    )
    knobs = set(start.session_start_info.hparams)
    assert {"kernel_size", "pool", "lr", "momentum", "conv_channels"} <= knobs
    assert not [k for k in knobs if k.startswith("_")]  # no _class_path, _instantiator
    assert "_hparams_/experiment" not in acc.PluginTagToContent("hparams")  # TensorBoard lists every run's knobs


@pytest.mark.long  # uses `fitted`
def test_test_logs_every_layers_feature_maps_of_one_digit_per_class(fitted) -> None:
    """test/feature_maps/<layer>, at the run's last step: the 10 digits one under the other, each layer as
    wide as its maps and as tall as 10 rows of them (read back with TensorBoard's reader, decoded as PNG)."""
    import io

    import numpy as np
    from PIL import Image

    from lab_cnn.nets import LabCNN

    run_dir, _ = fitted
    acc = events(run_dir).GetAccumulator(".")
    layers = [name for name, _ in LabCNN().layers.named_children()]
    assert {f"test/feature_maps/{name}" for name in layers} <= set(acc.Tags()["images"])
    heights = {}
    for name in layers:
        [image] = acc.Images(f"test/feature_maps/{name}")
        assert image.step == 2 * BATCHES
        png = Image.open(io.BytesIO(image.encoded_image_string))
        assert png.size == (image.width, image.height)
        heights[name] = image.height
        assert len(np.unique(np.asarray(png.convert("L")))) > 10  # maps, not a blank
    # a row per digit, 2 px padding above and below: conv1's maps are 24 px, conv2's 8x8 maps enlarged 3x
    assert heights["conv1"] == heights["conv2"] == 10 * (24 + 2 * 2)
    # a dense layer: its 50 units as one 5 x 10 grid of 12 px cells per digit
    assert heights["fc1"] == 10 * (5 * 12 + 2 * 2)


@pytest.mark.long  # uses `fitted`
def test_both_frameworks_log_at_the_optimizer_step(fitted) -> None:
    run_dir, _ = fitted
    steps = {tag: [step for step, _ in values] for tag, values in scalars(run_dir, with_steps=True).items()}
    assert steps["train/loss"] == steps["val/acc"] == [BATCHES, 2 * BATCHES]
    assert steps["lr-SGD"] == [0, BATCHES] and steps["test/acc"] == [2 * BATCHES]
    keras = events(run_dir.parents[1] / "keras" / "k" / "version_0").GetAccumulator(".")
    assert [e.step for e in keras.Tensors("train/loss")] == [8] and [e.step for e in keras.Tensors("test/acc")] == [8]


@pytest.mark.long  # uses `fitted`
def test_confusion_counts_add_up_to_the_test_set_and_its_trace_to_the_lab_line(fitted) -> None:
    run_dir, line = fitted
    acc = events(run_dir).GetAccumulator(".")
    text = acc.Tensors("test/confusion_counts/text_summary")[-1].tensor_proto.string_val[0].decode()
    rows = [[int(n) for n in row.split("|")[2:-1]] for row in text.splitlines()[2:]]
    assert len(rows) == 10 and all(len(r) == 10 for r in rows)
    assert sum(map(sum, rows)) == 10_000
    correct = int(re.search(r"Accuracy: (\d+)/10000", line).group(1))
    assert sum(rows[i][i] for i in range(10)) == correct


def test_inspect_false_switches_histograms_and_graph_off(tmp_path) -> None:
    args = fit_args(
        "baseline.yaml", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "5", "--inspect", "false"
    )
    assert run(*args, cwd=tmp_path).returncode == 0
    mux = events(tmp_path / "lightning_logs" / "baseline" / "version_0")
    assert not tags(mux, "histograms") and not any(t["graph"] for t in mux.Runs().values())
    assert "train/loss" in tags(mux, "scalars") and "test/confusion_matrix" in tags(mux, "images")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.long  # uses `fitted`
def test_tensorboard_shows_both_frameworks_runs_scalars_and_knobs(fitted) -> None:
    run_dir, _ = fitted
    port = free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen(
        [str(tensorboard), "--logdir", str(run_dir.parents[1]), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/data"
    try:
        scalar_tags: dict = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not {"baseline/version_0", "keras/k/version_0"} <= set(scalar_tags):
            try:
                with urllib.request.urlopen(f"{url}/plugin/scalars/tags", timeout=5) as r:
                    scalar_tags = json.load(r)
            except OSError:
                time.sleep(1)
        request = urllib.request.Request(
            f"{url}/plugin/hparams/experiment",
            data=b'{"experimentName": ""}',
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            experiment = json.load(r)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert {"train/loss", "train/acc", "val/acc", "test/acc"} <= set(scalar_tags["baseline/version_0"])
    columns = {h["name"] for h in experiment["hparamInfos"]}
    # LabNet's knobs and the Keras run's (under KerasNet's names), in one table
    assert {"kernel_size", "pool", "lr", "momentum", "activation", "conv_layers", "dense_units"} <= columns
    assert not [c for c in columns if c.startswith("_")]
    assert {"hp/test_acc"} <= {m["name"]["tag"] for m in experiment["metricInfos"]}
