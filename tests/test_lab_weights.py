"""Weights saved by the lab's own mnist_cnn_pytorch.py (a plain state_dict, ``conv1.weight``, ...) work
with test, validate, predict and fit, and give exactly the lab script's own test() figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lab_cnn.mnist import load_split, normalize
from tests.helpers import CONFIGS, DATA_DIR, run


class Net(nn.Module):
    """The lab script's network, as mnist_cnn_pytorch.py defines it (fc1's width is the neuron study's knob)."""

    def __init__(self, hidden: int = 50) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = F.relu(self.fc1(x.view(-1, 320)))
        return F.log_softmax(self.fc2(F.dropout(x, training=self.training)), -1)


def lab_test_line(model: Net) -> str:
    """The lab script's test(): batches of 1000, summed NLL over the 10,000 test images, its print format."""
    images, labels = load_split(str(DATA_DIR), train=False)
    x = normalize(images, "standard")
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for xb, yb in zip(x.split(1000), labels.split(1000)):
            output = model(xb)
            loss += F.nll_loss(output, yb, reduction="sum").item()
            correct += int(output.max(1)[1].eq(yb).sum())
    return f"Test set: Average loss: {loss / 10000:.4f}, Accuracy: {correct}/{10000} ({100 * correct / 10000:.0f}%)"


@pytest.fixture(scope="module")
def lab_weights(tmp_path_factory) -> dict[int, tuple[Path, str]]:
    """models/mnist_cnn.pth as the lab's script saves it, after 100 steps of its training, for fc1 of 50
    and of 80 units; with the line its test() prints."""
    folder = tmp_path_factory.mktemp("lab")
    images, labels = load_split(str(DATA_DIR), train=True)
    x = normalize(images[:12800], "standard")
    found = {}
    for hidden in (50, 80):
        torch.manual_seed(1)
        model = Net(hidden)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
        for xb, yb in zip(x.split(128), labels[:12800].split(128)):
            optimizer.zero_grad()
            F.nll_loss(model(xb), yb).backward()
            optimizer.step()
        path = folder / f"mnist_cnn_{hidden}.pth"
        torch.save(model.state_dict(), path)
        found[hidden] = path, lab_test_line(model)
    return found


def command(subcommand: str, weights: Path, *extra: str) -> list[str]:
    config = ["--config", str(CONFIGS / "baseline.yaml"), "--data.data_dir", str(DATA_DIR)]
    return [subcommand, *config, "--ckpt_path", str(weights), "--trainer.enable_progress_bar", "false", *extra]


@pytest.mark.parametrize("hidden", [50, 80])
def test_testing_the_lab_scripts_weights_prints_the_lab_scripts_own_line(hidden: int, lab_weights, tmp_path) -> None:
    weights, expected = lab_weights[hidden]
    result = run(*command("test", weights, "--model.hidden_units", str(hidden)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout.splitlines()
    assert f"Weights from {weights}" in result.stderr


def test_validate_predict_and_fit_take_the_lab_scripts_weights(lab_weights, tmp_path) -> None:
    weights, expected = lab_weights[50]
    correct = int(re.search(r"Accuracy: (\d+)/", expected).group(1))
    validate = run(*command("validate", weights), cwd=tmp_path)
    assert validate.returncode == 0, validate.stderr[-2000:]
    predict = run(*command("predict", weights), cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr[-2000:]
    rows = (tmp_path / "lightning_logs/baseline").glob("version_*/predictions.csv")
    lines = next(rows).read_text().splitlines()[1:]
    assert sum(line.split(",")[1] == line.split(",")[2] for line in lines) == correct
    # as starting weights: one step with a negligible learning rate leaves the lab's test figures
    one_step = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--model.lr", "1e-12"]
    fit = run(*command("fit", weights, *one_step), cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert expected in fit.stdout.splitlines()


def test_weights_of_another_shape_are_refused_naming_the_layer(lab_weights, tmp_path) -> None:
    weights, _ = lab_weights[80]
    result = run(*command("test", weights), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "net.layers.fc1.weight is (80, 320) in the checkpoint and (50, 320) in the model" in result.stderr
    assert not (tmp_path / "lightning_logs").exists()
