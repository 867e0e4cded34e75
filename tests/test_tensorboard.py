"""What a fit leaves for TensorBoard, read back with TensorBoard's own reader and its real server,
and predictions on digit images that are not MNIST files."""

from __future__ import annotations

import csv
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from lab_cnn.mnist import load_split

from conftest import CONFIGS, DATA_DIR, fit_args, run


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, str]:
    """A 2-epoch baseline run: its folder and the lab line it printed."""
    cwd = tmp_path_factory.mktemp("fit")
    args = fit_args("baseline.yaml", "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "150")
    result = run(*args, "--trainer.enable_progress_bar", "false", cwd=cwd)
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.startswith("Test set:"))
    return cwd / "lightning_logs" / "baseline" / "version_0", line


def events(run_dir: Path) -> EventMultiplexer:
    mux = EventMultiplexer(size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    mux.AddRunsFromDirectory(str(run_dir))
    mux.Reload()
    return mux


def tags(mux: EventMultiplexer, kind: str) -> set[str]:
    return {t for run_tags in mux.Runs().values() for t in run_tags.get(kind, [])}


def test_fit_logs_scalars_histograms_graph_images_and_hparams(fitted) -> None:
    run_dir, line = fitted
    mux = events(run_dir)
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc", "lr-SGD"} <= tags(mux, "scalars")
    histograms = tags(mux, "histograms")
    for name in ("conv1.weight", "conv2.bias", "fc1.weight", "fc2.weight"):
        assert f"weights/net.layers.{name}" in histograms and f"gradients/net.layers.{name}" in histograms
    [(run, _)] = mux.Runs().items()
    acc = mux.GetAccumulator(run)
    assert [e.step for e in acc.Histograms("weights/net.layers.conv1.weight")] == [0, 1]
    assert acc.Histograms("gradients/net.layers.fc1.weight")[-1].histogram_value.max > 0
    assert any(t["graph"] for t in mux.Runs().values())
    assert {"test/confusion_matrix", "test/misclassified", "test/conv1_filters"} <= tags(mux, "images")
    for tag in ("test/confusion_matrix", "test/misclassified", "test/conv1_filters"):
        image = acc.Images(tag)[-1]
        assert image.width > 50 and image.height > 50 and len(image.encoded_image_string) > 1000
    hparams = acc.PluginTagToContent("hparams")
    assert b"hp/test_acc" in hparams["_hparams_/experiment"] and b"kernel_size" in hparams["_hparams_/experiment"]


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
    args = fit_args("baseline.yaml", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "5", "--inspect", "false")
    assert run(*args, cwd=tmp_path).returncode == 0
    mux = events(tmp_path / "lightning_logs" / "baseline" / "version_0")
    assert not tags(mux, "histograms") and not any(t["graph"] for t in mux.Runs().values())
    assert "train/loss" in tags(mux, "scalars") and "test/confusion_matrix" in tags(mux, "images")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorboard_server_lists_the_run_and_its_scalar_tags(fitted) -> None:
    run_dir, _ = fitted
    port = free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen([str(tensorboard), "--logdir", str(run_dir.parent.parent), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        scalar_tags: dict = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "baseline/version_0" not in scalar_tags:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5) as r:
                    scalar_tags = json.load(r)
            except OSError:
                time.sleep(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as r:
            runs = json.load(r)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "baseline/version_0" in runs
    assert {"train/loss", "train/acc", "val/acc", "test/acc"} <= set(scalar_tags["baseline/version_0"])


def test_predict_on_rendered_digits_agrees_with_the_originals(fitted, tmp_path) -> None:
    """Test digits drawn dark on light at 3x the size, read back the MNIST way, get the same answers."""
    run_dir, _ = fitted
    images, _ = load_split(str(DATA_DIR), train=False)
    digits = tmp_path / "digits"
    digits.mkdir()
    for i in range(300):
        Image.fromarray(255 - images[i, 0].numpy()).resize((84, 84), Image.BICUBIC).save(digits / f"{i:04d}.png")
    (digits / "notes.txt").write_text("not an image")
    (digits / "broken.png").write_bytes(b"\x89PNG broken")

    common = ["predict", "--config", str(CONFIGS / "baseline.yaml"), "--data.data_dir", str(DATA_DIR),
              "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"), "--trainer.enable_progress_bar", "false"]
    original = run(*common, cwd=tmp_path)
    drawn = run(*common, "--data.predict_path", str(digits), cwd=tmp_path)
    assert original.returncode == 0 and drawn.returncode == 0, drawn.stderr
    assert "skipped" in drawn.stderr and "broken.png" in drawn.stderr and "notes.txt" in drawn.stderr
    assert f"{digits / '0000.png'}: " in drawn.stdout and "top 3:" in drawn.stdout

    def predictions(version: str) -> list[dict]:
        return list(csv.DictReader(open(tmp_path / "lightning_logs" / "baseline" / version / "predictions.csv")))

    first, second = predictions("version_0"), predictions("version_1")
    by_file = {Path(r["image"]).name: r for r in second}
    assert len(by_file) == 300
    agree = sum(by_file[f"{i:04d}.png"]["digit"] == first[i]["digit"] for i in range(300))
    assert agree / 300 >= 0.95, agree
    assert all(len(r["top3"].split()) == 3 for r in second)


def test_misclassified_figure_labels_only_the_digits_it_shows() -> None:
    import torch

    from lab_cnn.inspection import mistakes_figure

    # a test epoch passes every mistake's labels (hundreds) but only the first images
    true, predicted = torch.arange(300) % 10, (torch.arange(300) + 1) % 10
    figure = mistakes_figure(torch.rand(4, 1, 28, 28), true, predicted)
    assert [t.get_text() for t in figure.axes[0].texts] == [f"true {i}, pred {i + 1}" for i in range(4)]
