"""keras_parity: the Keras model and its PyTorch port against the lab's summaries and each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.util import tensor_util

from keras_parity import KerasCNN, build_model, to_torch
from keras_parity.cli import keras_arrays
from keras_parity.keras_model import keras
from keras_parity.nets import ACTIVATIONS
from lab_cnn.documented import documented
from lab_cnn.errors import UserError
from lab_cnn.summary import layer_rows

from conftest import DATA_DIR, run

SUMMARIES = documented()["keras"]["summaries"]
CONV_LAYERS = {"two_conv": 2, "one_conv": 1}


@pytest.mark.parametrize("variant", ["two_conv", "one_conv"])
def test_keras_model_matches_the_documented_summary(variant: str) -> None:
    doc = SUMMARIES[variant]
    model = build_model(conv_layers=CONV_LAYERS[variant])
    got = [[layer.name, list(layer.output.shape[1:]), layer.count_params()] for layer in model.layers]
    assert got == doc["layers"]
    assert model.count_params() == doc["total_params"]
    if "trainable_params" in doc:
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        assert (trainable, model.count_params() - trainable) == (doc["trainable_params"], doc["non_trainable_params"])


@pytest.mark.parametrize("variant", ["two_conv", "one_conv"])
def test_port_matches_the_documented_summary(variant: str) -> None:
    doc = SUMMARIES[variant]
    rows = layer_rows(KerasCNN(conv_layers=CONV_LAYERS[variant]))
    channels_last = [
        (name, list(shape[1:] + shape[:1]) if len(shape) == 3 else list(shape), t + f) for name, _, shape, t, f in rows
    ]
    assert [list(r) for r in channels_last] == doc["layers"]
    trainable, frozen = sum(r[3] for r in rows), sum(r[4] for r in rows)
    assert trainable + frozen == doc["total_params"]
    if "trainable_params" in doc:
        assert (trainable, frozen) == (doc["trainable_params"], doc["non_trainable_params"])


@pytest.fixture(scope="module")
def test_images() -> np.ndarray:
    return keras_arrays(str(DATA_DIR), train=False)[0][:512]


def randomize_batch_norm(model, rng: np.random.Generator) -> None:
    """Non-trivial BatchNorm: random gamma, beta, moving mean and (positive) moving variance."""
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.normal(0, 0.2, beta.shape).astype("float32"),
                    rng.normal(0, 0.3, mean.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, var.shape).astype("float32"),
                ]
            )


@pytest.mark.parametrize("conv_layers", [1, 2])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_to_torch_gives_the_keras_outputs(activation: str, conv_layers: int, test_images: np.ndarray) -> None:
    keras.utils.set_random_seed(conv_layers)
    model = build_model(activation=activation, conv_layers=conv_layers)
    randomize_batch_norm(model, np.random.default_rng(conv_layers))
    keras_probs = model.predict(test_images, batch_size=256, verbose=0)
    net = to_torch(model)
    with torch.no_grad():
        torch_probs = net(torch.from_numpy(test_images).permute(0, 3, 1, 2)).exp().numpy()
    assert np.abs(keras_probs - torch_probs).max() < 1e-5
    assert (keras_probs.argmax(1) == torch_probs.argmax(1)).all()
    assert np.ptp(keras_probs, axis=0).max() > 1e-5  # outputs vary across images by more than the tolerance


def lab_script_model(activation: str = "relu", dropout: float = 0.5, extra: list | None = None):
    """The network as the lab's mnist_cnn_keras.py builds it: Keras' automatic layer names."""
    layers = keras.layers
    model = keras.Sequential([keras.Input(shape=(28, 28, 1))])
    for _ in range(2):
        model.add(layers.Conv2D(64, kernel_size=(3, 3), activation=activation))
        model.add(layers.BatchNormalization())
        model.add(layers.MaxPooling2D(pool_size=(2, 2)))
        model.add(layers.Dropout(0.25))
    for layer in extra or []:
        model.add(layer)
    model.add(layers.Flatten())
    for _ in range(3):
        model.add(layers.Dense(128, activation=activation))
        model.add(layers.BatchNormalization())
        model.add(layers.Dropout(dropout))
    model.add(layers.Dense(10, activation="softmax"))
    return model


def test_to_torch_maps_a_lab_built_model_by_structure_whatever_its_names(test_images: np.ndarray) -> None:
    lab_script_model()  # a first model takes conv2d, dense, ...: the next one gets conv2d_2, dense_4, ...
    model = lab_script_model("tanh")
    assert "conv2d_2" in [layer.name for layer in model.layers]
    randomize_batch_norm(model, np.random.default_rng(3))
    with torch.no_grad():
        torch_probs = to_torch(model)(torch.from_numpy(test_images).permute(0, 3, 1, 2)).exp().numpy()
    assert np.abs(model.predict(test_images, batch_size=256, verbose=0) - torch_probs).max() < 1e-5


@pytest.mark.parametrize(
    ("model", "refusal"),
    [
        (
            lambda: lab_script_model(dropout=0.3),
            r"layer 12, dropout_\d+ \(Dropout\): rate 0.3, where the lab's network has 0.5",
        ),
        (
            lambda: lab_script_model(extra=[keras.layers.Conv2D(64, 1)]),
            r"layer 9, conv2d_\d+ \(Conv2D\): activation 'linear'",
        ),
        (
            lambda: lab_script_model(extra=[keras.layers.GaussianNoise(0.1)]),
            r"layer 9, gaussian_noise\w* \(GaussianNoise\): the lab's",
        ),
        (
            lambda: keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]),
            "not the lab's network",
        ),
    ],
)
def test_to_torch_refuses_a_model_it_cannot_map_naming_the_layer(model, refusal: str) -> None:
    with pytest.raises(UserError, match=refusal):
        to_torch(model())


def test_bad_geometry_and_names_are_refused_on_both_sides() -> None:
    with pytest.raises(UserError, match="conv2d_1: a 14x14 kernel does not fit"):
        build_model(kernel_size=14)
    with pytest.raises(UserError, match="conv2d_1: a 14x14 kernel does not fit"):
        KerasCNN(kernel_size=14)
    with pytest.raises(UserError, match="activation: 'swish' is not allowed"):
        build_model(activation="swish")


def test_keras_parity_train_test_and_summary_commands(tmp_path) -> None:
    common = ["--data-dir", str(DATA_DIR), "--model_path", "models/run/mnist_cnn.keras"]
    trained = run(
        "--mode", "train", "--epochs", "1", "--limit-batches", "8", *common, cwd=tmp_path, command="keras_parity"
    )
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "models/run/mnist_cnn.keras").is_file()
    assert list((tmp_path / "lightning_logs/keras/mnist_cnn").rglob("events.out.tfevents.*"))
    tested = run("--mode", "test", *common, cwd=tmp_path, command="keras_parity")
    assert tested.returncode == 0, tested.stderr
    lines = tested.stdout.splitlines()
    assert lines[0].startswith("Test loss: ") and float(lines[0].split(": ")[1]) > 0
    assert lines[1].startswith("Test accuracy: ") and lines[1].endswith("%")
    mux = EventMultiplexer(size_guidance={"tensors": 0})
    mux.AddRunsFromDirectory(str(tmp_path / "lightning_logs/keras/mnist_cnn"))
    mux.Reload()
    logged = {run: set(t["tensors"]) for run, t in mux.Runs().items()}
    assert {"train/loss", "train/acc", "test/loss", "test/acc", "test/images"} <= logged["."]  # lab-cnn's scalar names
    assert any(tag.endswith("/histogram") for tag in logged["train"])  # Keras' own histograms
    ours = mux.GetAccumulator(".")
    test_acc = tensor_util.make_ndarray(ours.Tensors("test/acc")[-1].tensor_proto).item()
    assert f"Test accuracy: {100 * test_acc:.2f}%" == lines[1]
    # lab-cnn's x-axis, optimizer steps: 8 batches trained, so train/* and test/* at step 8, lr-SGD from 0
    assert [e.step for e in ours.Tensors("train/loss")] == [8] and [e.step for e in ours.Tensors("test/acc")] == [8]
    assert [e.step for e in ours.Tensors("lr-SGD")] == [0]
    summary = run("--mode", "summary", "--conv-layers", "1", cwd=tmp_path, command="keras_parity")
    assert "Total params: 1,421,322" in summary.stdout and "flatten (Flatten)" in summary.stdout


@pytest.mark.parametrize("rate", [0.25, 0.5])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_ports_dropout_drops_at_its_rate_and_keeps_the_mean(rate: float, layout: torch.memory_format) -> None:
    from keras_parity.nets import Dropout

    torch.manual_seed(0)
    x = torch.ones(256, 64, 13, 13).contiguous(memory_format=layout)
    dropout = Dropout(rate)
    out = dropout(x)
    assert out.is_contiguous(memory_format=layout)
    assert abs((out == 0).float().mean().item() - rate) < 0.01
    assert out.unique().tolist() == pytest.approx([0.0, 1 / (1 - rate)])
    assert abs(out.mean().item() - 1) < 0.01
    # the mask is drawn per element: the dropped fraction is the same along every axis
    for dim in range(4):
        dropped = (out == 0).float().mean([d for d in range(4) if d != dim])
        assert (dropped - rate).abs().max().item() < 0.05
    assert torch.equal(dropout.eval()(x), x)
