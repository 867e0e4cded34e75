"""keras_parity: the Keras model and its PyTorch port against the lab's summaries and each other."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.util import tensor_util

from keras_parity import KerasCNN, KerasNet, build_model, keras_model, to_torch
from keras_parity.cli import keras_arrays, keras_batches, seed_everything
from keras_parity.keras_model import keras
from keras_parity.nets import ACTIVATIONS
from lab_cnn.documented import documented
from lab_cnn.errors import UserError, exit_on_user_error
from lab_cnn.runs import run_versions
from lab_cnn.summary import layer_rows
from tests.helpers import DATA_DIR, run, run_in_process

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


def lab_script_model(
    activation: str = "relu", dropout: float = 0.5, extra: list | None = None, instead: dict | None = None, **input
):
    """The network as the lab's mnist_cnn_keras.py builds it: Keras' automatic layer names; ``instead``
    replaces layers by their number (from 1, as to_torch counts), ``input`` goes to ``keras.Input``."""
    layers = keras.layers
    stack = []
    for _ in range(2):
        stack.append(layers.Conv2D(64, kernel_size=(3, 3), activation=activation))
        stack.append(layers.BatchNormalization())
        stack.append(layers.MaxPooling2D(pool_size=(2, 2)))
        stack.append(layers.Dropout(0.25))
    stack.extend(extra or [])
    stack.append(layers.Flatten())
    for _ in range(3):
        stack.append(layers.Dense(128, activation=activation))
        stack.append(layers.BatchNormalization())
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(10, activation="softmax"))
    for number, layer in (instead or {}).items():
        stack[number - 1] = layer
    return keras.Sequential([keras.Input(**{"shape": (28, 28, 1), **input}), *stack])


def conv_blocks(*paddings: str, kernel: int = 5):
    """The lab's network with a conv block per padding, ``kernel`` x ``kernel`` convolutions."""
    layers = keras.layers
    stack = [keras.Input(shape=(28, 28, 1))]
    for padding in paddings:
        stack.append(layers.Conv2D(64, kernel, padding=padding, activation="relu"))
        stack.extend([layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Dropout(0.25)])
    stack.append(layers.Flatten())
    for _ in range(3):
        stack.extend([layers.Dense(128, activation="relu"), layers.BatchNormalization(), layers.Dropout(0.5)])
    return keras.Sequential([*stack, layers.Dense(10, activation="softmax")])


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


L = keras.layers


class Conv2D(L.Conv2D):
    """Keras' Conv2D by name, computing twice its outputs."""

    def call(self, inputs):  # type: ignore[no-untyped-def]
        return 2 * super().call(inputs)


# Each setting that changes what a layer computes, and each weight's shape, is compared with the port's
# module at the layer's place (1-4 and 5-8 the conv blocks, 9 Flatten, 10-18 the Dense blocks, 19 softmax).
UNFIT = {
    "a 5x5 second Conv2D": (
        lambda: lab_script_model(instead={5: L.Conv2D(64, 5, activation="relu")}),
        r"layer 5, conv2d_\d+ \(Conv2D\): kernel_size \(5, 5\), where the lab's network has \(3, 3\)",
    ),
    "dilation_rate 2": (
        lambda: lab_script_model(instead={5: L.Conv2D(64, 3, dilation_rate=2, activation="relu")}),
        r"layer 5, conv2d_\d+ \(Conv2D\): dilation_rate \(2, 2\), where the lab's network has \(1, 1\)",
    ),
    "groups 2": (
        lambda: lab_script_model(instead={5: L.Conv2D(64, 3, groups=2, activation="relu")}),
        r"layer 5, conv2d_\d+ \(Conv2D\): groups 2, where the lab's network has 1",
    ),
    "a Conv2D without bias": (
        lambda: lab_script_model(instead={1: L.Conv2D(64, 3, use_bias=False, activation="relu")}),
        r"layer 1, conv2d\w* \(Conv2D\): use_bias False, where the lab's network has True",
    ),
    "a Dense without bias": (
        lambda: lab_script_model(instead={13: L.Dense(128, use_bias=False, activation="relu")}),
        r"layer 13, dense_\d+ \(Dense\): use_bias False, where the lab's network has True",
    ),
    "strides 2": (
        lambda: lab_script_model(instead={5: L.Conv2D(64, 3, strides=2, activation="relu")}),
        r"layer 5, conv2d_\d+ \(Conv2D\): strides \(2, 2\), where the lab's network has \(1, 1\)",
    ),
    "a MaxPooling2D with padding same": (
        lambda: lab_script_model(instead={3: L.MaxPooling2D(2, padding="same")}),
        r"layer 3, max_pooling2d\w* \(MaxPooling2D\): padding 'same', where the lab's network has 'valid'",
    ),
    "a later Dense of 64 units": (
        lambda: lab_script_model(instead={13: L.Dense(64, activation="relu")}),
        r"layer 13, dense_\d+ \(Dense\): units 64, where the lab's network has 128",
    ),
    "a BatchNormalization over axis 1 (the rows)": (
        lambda: lab_script_model(instead={2: L.BatchNormalization(axis=1)}),
        r"layer 2, batch_normalization\w* \(BatchNormalization\): axis 1, where the lab's network has -1",
    ),
    "a BatchNormalization without scale": (
        lambda: lab_script_model(instead={11: L.BatchNormalization(scale=False)}),
        r"layer 11, batch_normalization_\d+ \(BatchNormalization\): scale False, where the lab's network has True",
    ),
    "an activation the port lacks": (
        lambda: lab_script_model("swish"),
        r"layer 1, conv2d\w* \(Conv2D\): activation 'silu', where the lab's network has one of relu, sigmoid",
    ),
    "RGB images": (
        lambda: lab_script_model(shape=(28, 28, 3)),
        r"layer 1, conv2d\w* \(Conv2D\): input \(28, 28, 3\), where the lab's network takes \(28, 28, 1\)",
    ),
    "a conv block more than valid convolutions fit": (
        lambda: conv_blocks("valid", "valid", "same"),
        r"layer 9, conv2d_\d+ \(Conv2D\): conv block 3, where the lab's network's valid 5x5 convolutions fit 2",
    ),
    "a bfloat16 Conv2D": (
        lambda: lab_script_model(instead={5: L.Conv2D(64, 3, activation="relu", dtype="bfloat16")}),
        r"layer 5, conv2d_\d+ \(Conv2D\): dtype 'bfloat16', where the lab's network computes in float32",
    ),
    "a mixed_float16 Dense": (
        lambda: lab_script_model(instead={13: L.Dense(128, activation="relu", dtype="mixed_float16")}),
        r"layer 13, dense_\d+ \(Dense\): dtype 'mixed_float16'",
    ),
    "a Conv2D of one's own": (
        lambda: lab_script_model(instead={5: Conv2D(64, 3, activation="relu")}),
        r"layer 5, conv2d_\d+ \(Conv2D\): a Conv2D of tests.test_keras_parity, where the lab's network has Keras'",
    ),
    "not a Keras model": (lambda: torch.nn.Linear(2, 2), r"Linear is not a Keras model"),
    "a model never built (no weights)": (
        lambda: keras.Sequential([L.Conv2D(64, 3, activation="relu"), L.Flatten(), L.Dense(9), L.Dense(10)]),
        r"layer 1, conv2d_\d+ \(Conv2D\): weights of shapes \[\], where the lab's network has \[\(3, 3, 1, 64\)",
    ),
}


@pytest.mark.parametrize("case", list(UNFIT))
def test_to_torch_refuses_every_setting_the_port_computes_otherwise_in_one_line(case: str) -> None:
    model, refusal = UNFIT[case]
    with pytest.raises(UserError, match=f"^to_torch: {refusal}") as refused:
        to_torch(model())
    assert "\n" not in str(refused.value)


def test_bad_geometry_and_names_are_refused_on_both_sides() -> None:
    with pytest.raises(UserError, match="conv2d_1: a 14x14 kernel does not fit"):
        build_model(kernel_size=14)
    with pytest.raises(UserError, match="conv2d_1: a 14x14 kernel does not fit"):
        KerasCNN(kernel_size=14)
    with pytest.raises(UserError, match="^model.filters: conv2d's weight of shape .* more than this machine's"):
        KerasNet(filters=10**23)
    with pytest.raises(UserError, match="^model.dense_units: dense's weight of shape .* more than this machine's"):
        KerasNet(dense_units=10**12)
    with pytest.raises(UserError, match="^model.dense_units: each later dense layer's weight of shape"):
        KerasNet(dense_layers=1000, dense_units=10**5)  # counted before any is made: 40 GB each
    with pytest.raises(
        UserError, match=r"^model.dense_layers: 1000000000 is not allowed; use a whole number in \[1, 1000"
    ):
        KerasNet(dense_layers=10**9, dense_units=1)  # a billion layers of a few weights: a billion Python objects
    with pytest.raises(UserError, match="activation: 'swish' is not allowed"):
        build_model(activation="swish")


@pytest.mark.parametrize("knobs", [{"activation": "swish"}, {"conv_layers": 0}, {"filters": -1}, {"dense_units": 2.5}])
def test_the_keras_port_as_a_model_names_a_refused_knob_as_its_config_does(knobs: dict) -> None:
    (key,) = knobs
    with pytest.raises(UserError, match=rf"^model\.{key}: .* is not allowed"):
        KerasNet(**knobs)


@pytest.mark.long  # a keras-parity training as a process, then its test and a summary (34 s in the suite)
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
    assert {"train/loss", "train/acc", "test/loss", "test/acc", "test/images"} <= logged["version_0"]  # lab-cnn's names
    assert any(tag.endswith("/histogram") for tag in logged["version_0/train"])  # Keras' own histograms
    ours = mux.GetAccumulator("version_0")
    test_acc = tensor_util.make_ndarray(ours.Tensors("test/acc")[-1].tensor_proto).item()
    assert f"Test accuracy: {100 * test_acc:.2f}%" == lines[1]
    # lab-cnn's x-axis, optimizer steps: 8 batches trained, so train/* and test/* at step 8, lr-SGD from 0
    assert [e.step for e in ours.Tensors("train/loss")] == [8] and [e.step for e in ours.Tensors("test/acc")] == [8]
    assert [e.step for e in ours.Tensors("lr-SGD")] == [0]
    summary = run("--mode", "summary", "--conv-layers", "1", cwd=tmp_path, command="keras_parity")
    assert "Total params: 1,421,322" in summary.stdout and "flatten (Flatten)" in summary.stdout


# TensorFlow 2.21, with op determinism on, logs this once per Keras fit and evaluate of arrays, as it rewrites
# Keras' parallel map of them as a sequential one: an ERROR line that says nothing about the run.
DETERMINISTIC_MAP_NOTICE = "NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition"
# A process with op determinism on, as a training's: Keras' own evaluate of arrays, then keras-parity's
# training and test.
NOTICE_SCRIPT = """
import sys
from keras_parity.cli import keras_arrays, main, seed_everything
from keras_parity.keras_model import build_model
seed_everything(1)
model = build_model()
model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
model.evaluate(*keras_arrays(sys.argv[1], train=False), batch_size=128, verbose=0)
print("-- keras-parity --", file=sys.stderr, flush=True)
common = ["--model_path", "m.keras", "--data-dir", sys.argv[1]]
main(["--mode", "train", "--epochs", "1", "--limit-batches", "2", *common])
main(["--mode", "test", *common])
"""


def test_keras_paritys_training_and_test_write_nothing_to_stderr(tmp_path) -> None:
    """Keras' pipeline of arrays logs TensorFlow's ERROR line about its map; keras-parity's batches
    (``keras_batches``) have no map, and its training and test write nothing to stderr at all."""
    result = subprocess.run(
        [sys.executable, "-c", NOTICE_SCRIPT, str(DATA_DIR)], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    keras_own, ours = result.stderr.split("-- keras-parity --\n")
    assert DETERMINISTIC_MAP_NOTICE in keras_own  # what arrays would bring (when TensorFlow stops, this can go)
    assert ours == "" and "Test accuracy: " in result.stdout


def small_net(
    inputs=None, outputs: int = 10, activation: str | None = "softmax", heads: int = 1, dtype: str | None = None
) -> keras.Model:
    """A conv block and two Dense layers, as the lab builds them, of other inputs or outputs than the lab's."""
    inputs = keras.Input((28, 28, 1)) if inputs is None else inputs
    image = inputs["image"] if isinstance(inputs, dict) else inputs[0] if isinstance(inputs, list) else inputs
    conv = keras.layers.Conv2D(4, 3, dtype=dtype)(image)
    hidden = keras.layers.Dense(8, activation="relu", dtype=dtype)(keras.layers.Flatten(dtype=dtype)(conv))
    heads_out = [keras.layers.Dense(outputs, activation=activation, dtype=dtype)(hidden) for _ in range(heads)]
    return keras.Model(inputs, heads_out if heads > 1 else heads_out[0])


def dict_output() -> tuple[keras.KerasTensor, dict[str, keras.KerasTensor]]:
    net = small_net()
    return net.inputs[0], {"digit": net.outputs[0]}


def log_softmax_net() -> keras.Model:
    net = small_net(activation=None)
    return keras.Model(net.inputs, keras.layers.Activation("log_softmax")(net.outputs[0]))  # a list of one input


# Models keras-parity cannot test as the lab's network, and what its one line says of each. Keras itself would
# test the first four (scores that are not probabilities, a dict input fed the images), refuse int32 inputs
# in words that give no reason, and two outputs with a KeyError traceback.
NOT_THE_LABS = {
    "linear output": (lambda: small_net(activation=None), "its outputs are not probabilities: an image's 10 sum to"),
    "sigmoid output": (lambda: small_net(activation="sigmoid"), "its outputs are not probabilities"),
    # TensorFlow's C++ log ("Not handling type DT_DOUBLE", oneDNN on float16) is held back too
    "float64 relu output": (lambda: small_net(activation="relu", dtype="float64"), "not probabilities"),
    "float16 relu output": (lambda: small_net(activation="relu", dtype="mixed_float16"), "not probabilities"),
    "log-softmax output": (log_softmax_net, "its outputs are not probabilities"),
    "dict input": (lambda: small_net({"image": keras.Input((28, 28, 1), name="image")}), "a dict of inputs (image)"),
    "two inputs": (
        lambda: small_net([keras.Input((28, 28, 1)), keras.Input((3,))]),
        "it takes 2 inputs; the lab's network takes one",
    ),
    "int32 input": (lambda: small_net(keras.Input((28, 28, 1), dtype="int32")), "it takes int32 inputs"),
    "colour images": (lambda: small_net(keras.Input((32, 32, 3))), "inputs of shape (32, 32, 3), not MNIST's"),
    "five classes": (lambda: small_net(outputs=5), "it gives outputs of shape (5,), not 10 class scores"),
    "two outputs": (lambda: small_net(heads=2), "it gives 2 outputs; the lab's network gives one"),
    "dict output": (lambda: keras.Model(*dict_output()), "it gives a dict of outputs (digit)"),
    "saved unbuilt": (lambda: keras.Sequential([keras.layers.Dense(10)]), "it was saved before it was built"),
}


def custom_layer_net() -> keras.Model:
    """The lab's kind of net after a layer of the maker's own code, registered where it was made (in this test's
    process, not in keras-parity's)."""

    @keras.saving.register_keras_serializable(package="mine")
    class Double(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, small_net()(Double()(inputs)))


def custom_initializer_net() -> keras.Model:
    @keras.saving.register_keras_serializable(package="mine")
    class Naught(keras.initializers.Initializer):  # not `Zeros`: Keras would load its own of that name
        def __call__(self, shape, dtype=None):
            return keras.ops.zeros(shape, dtype=dtype)

    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, small_net()(keras.layers.Conv2D(1, 1, kernel_initializer=Naught())(inputs)))


def lambda_net() -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, small_net()(keras.layers.Lambda(lambda x: x * 2.0)(inputs)))


def custom_activation_net() -> keras.Model:
    @keras.saving.register_keras_serializable(package="mine")
    def clipped(x):
        return keras.activations.relu(x, max_value=6.0)

    inputs = keras.Input((28, 28, 1))
    hidden = keras.layers.Dense(8, activation=clipped)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs)))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))


# Models Keras loads only with code of their maker's or, out of safe mode, from the file: what keras-parity's
# one line says of each (Keras' own names the model holding the part it lacks, and advises loading unsafely).
NOT_LOADABLE = {
    "custom layer": (custom_layer_net, "it uses the class 'Double', which Keras"),
    "custom activation": (custom_activation_net, "it uses the function 'mine>clipped', which Keras"),
    "custom initializer": (custom_initializer_net, "it uses the class 'Naught', which Keras"),
    "weights of another shape": (
        small_net,  # saved with the weights of a net of 8 filters where it has 4, below
        "The shape of the target variable and the shape of the target value in `variable.assign(value)` must match",
    ),
    "lambda layer": (lambda_net, "Keras' safe mode, which keras-parity loads in, refuses it: Requested the"),
}


def with_parts(change: Callable[[dict[str, bytes]], object]) -> Callable[[Path], None]:
    """An edit of a saved model: ``change`` edits the files of its archive (a dict of their names and bytes)."""

    def edit(path: Path) -> None:
        with zipfile.ZipFile(path) as archive:
            parts = {part: archive.read(part) for part in archive.namelist()}
        change(parts)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for part, data in parts.items():
                archive.writestr(part, data)

    return edit


def dense_net() -> keras.Model:
    """A net of one Dense layer: its weights are not a small net's."""
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )


def weights_of(net: keras.Model) -> bytes:
    """The weights file that Keras' model.save writes for ``net``."""
    with tempfile.TemporaryDirectory() as folder:
        net.save(Path(folder) / "net.keras")
        with zipfile.ZipFile(Path(folder) / "net.keras") as archive:
            return archive.read("model.weights.h5")


def with_bytes(change: Callable[[bytearray, dict[str, tuple[int, int]]], object]) -> Callable[[Path], None]:
    """An edit of a saved model's bytes, as a bad disk or copy would make it: ``change`` edits them, given where
    each file's two headers in the archive start, the local one (before its data) and the central one."""

    def edit(path: Path) -> None:
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            local = {info.filename: info.header_offset for info in archive.infolist()}
        central, at = {}, data.find(b"PK\x01\x02")
        while at >= 0:
            (name_length,) = struct.unpack("<H", data[at + 28 : at + 30])
            central[data[at + 46 : at + 46 + name_length].decode()] = at
            at = data.find(b"PK\x01\x02", at + 46)
        change(data, {name: (local[name], central[name]) for name in local})
        path.write_bytes(bytes(data))

    return edit


def flip_a_byte_of_the_weights(data: bytearray, headers: dict[str, tuple[int, int]]) -> None:
    """One byte in the middle of the weights' data changed (Keras stores them, not deflated)."""
    local = headers["model.weights.h5"][0]
    name_length, extra_length = struct.unpack("<HH", data[local + 26 : local + 30])
    (size,) = struct.unpack("<I", data[local + 18 : local + 22])
    data[local + 30 + name_length + extra_length + size // 2] ^= 0xFF


def overwrite_the_central_header_of_the_config(data: bytearray, headers: dict[str, tuple[int, int]]) -> None:
    """The mark that begins config.json's entry in the archive's central directory, zeroed."""
    central = headers["config.json"][1]
    data[central : central + 4] = bytes(4)


def set_field(name: str, field: int, value: int) -> Callable[[bytearray, dict[str, tuple[int, int]]], None]:
    """A 2-byte field of the file ``name``'s headers set to ``value``: its flags (6 in the local header, where bit 0
    says encrypted) or its compression method (8); the central header has each 2 bytes later."""

    def change(data: bytearray, headers: dict[str, tuple[int, int]]) -> None:
        local, central = headers[name]
        data[local + field : local + field + 2] = data[central + field + 2 : central + field + 4] = struct.pack(
            "<H", value
        )

    return change


# A small net's archive with one of its files damaged: the refusal names the file in the archive and why
DAMAGED = {
    "truncated weights": (
        with_parts(lambda parts: parts.update({"model.weights.h5": parts["model.weights.h5"][:2000]})),
        "its model.weights.h5 is not a readable HDF5 file: Unable to synchronously open file (truncated file",
    ),
    "weights that are no HDF5": (
        with_parts(lambda parts: parts.update({"model.weights.h5": b"weights"})),
        "its model.weights.h5 is not a readable HDF5 file: Unable to synchronously open file (file signature",
    ),
    "weights with a byte changed": (
        with_bytes(flip_a_byte_of_the_weights),
        "its model.weights.h5 is damaged: its checksum",
    ),
    "weights of another net": (
        with_parts(lambda parts: parts.update({"model.weights.h5": weights_of(dense_net())})),
        "its model.weights.h5 does not fit the layers of its config.json: A total of",
    ),
    "a central directory overwritten": (
        with_bytes(overwrite_the_central_header_of_the_config),
        "the archive is damaged or cut short: ",
    ),
    "its middle cut out": (
        with_bytes(lambda data, _: data.__delitem__(slice(len(data) // 4, -len(data) // 4))),
        "the archive is damaged or cut short: ",
    ),
    "a config marked encrypted": (
        with_bytes(set_field("config.json", 6, 1)),
        "the archive cannot be read: File 'config.json' is encrypted",
    ),
    "weights compressed by a method zipfile lacks": (
        with_bytes(set_field("model.weights.h5", 8, 99)),
        "the archive cannot be read: That compression method is not supported",
    ),
    "a config cut short": (
        with_parts(lambda parts: parts.update({"config.json": parts["config.json"][:100]})),
        "its config.json is not JSON: ",
    ),
    "a config with a byte no UTF-8 has": (
        with_parts(lambda parts: parts.update({"config.json": b"\xff" + parts["config.json"]})),
        "its config.json is not JSON: 'utf-8' codec can't decode",
    ),
    "a config that is a list": (
        with_parts(lambda parts: parts.update({"config.json": b"[1, 2]"})),
        "its config.json is not a model's config: Keras writes a JSON object with the model's class_name there",
    ),
    "an empty config": (with_parts(lambda parts: parts.update({"config.json": b"{}"})), "is not a model's config"),
    "a config nested deeper than Python reads": (
        with_parts(lambda parts: parts.update({"config.json": b'{"a": ' * 100_000 + b"1" + b"}" * 100_000})),
        "its config.json nests too deep to be read",
    ),
    "a Sequential of layers that are no list": (
        with_parts(
            lambda parts: parts.update({"config.json": b'{"class_name": "Sequential", "config": {"layers": 1}}'})
        ),
        "its config.json gives the class 'Sequential' a config Keras cannot build it from",
    ),
    "no config": (with_parts(lambda parts: parts.pop("config.json")), "it holds no config.json"),
}

SEPARATOR = "-- model tested, exit code "
# keras-parity --mode test of each model named, one after the other in one process with Python's warnings on
# (a user's console shows them), each followed by a separator on stdout and on stderr, with its exit code there
TEST_EACH = f"""
import sys
from keras_parity.cli import main
for name in sys.argv[2:]:
    try:
        main(["--mode", "test", "--model_path", name + ".keras", "--data-dir", sys.argv[1]])
        code = 0
    except SystemExit as e:
        code = e.code
    print({SEPARATOR!r}, flush=True)
    print({SEPARATOR!r} + str(code), file=sys.stderr, flush=True)
"""


@pytest.fixture(scope="module")
def tested_models(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    """Each model of NOT_THE_LABS saved (one compiled with Adam, which makes Keras warn on loading it) and
    tested with keras-parity in one process, and a softmax net, compiled with Adam, that passes."""
    folder = tmp_path_factory.mktemp("models")
    nets = {name: make() for name, (make, _) in {**NOT_THE_LABS, **NOT_LOADABLE}.items()}
    nets.update({name: small_net() for name in DAMAGED})
    nets["softmax, compiled with adam"] = small_net()
    for name in ("linear output", "softmax, compiled with adam"):  # Keras warns, loading them, of Adam's variables
        nets[name].compile(optimizer="adam", loss="mse")
    with pytest.warns(UserWarning, match="not yet been built"):
        nets["saved unbuilt"].save(folder / "saved unbuilt.keras")
    for name, net in nets.items():
        if net.built:
            net.save(folder / f"{name}.keras")
    with zipfile.ZipFile(folder / "weights of another shape.keras") as model:
        parts = {part: model.read(part) for part in model.namelist()}
    wider = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, name="conv2d")])
    wider.save(folder / "wider.keras")
    with zipfile.ZipFile(folder / "wider.keras") as model:
        parts["model.weights.h5"] = model.read("model.weights.h5")
    with zipfile.ZipFile(folder / "weights of another shape.keras", "w") as model:
        for part, data in parts.items():
            model.writestr(part, data)
    for name, (damage, _) in DAMAGED.items():
        damage(folder / f"{name}.keras")
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    command = [sys.executable, "-c", TEST_EACH, str(DATA_DIR), *nets]
    tested = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stderr[-2000:]
    stdouts = tested.stdout.split(SEPARATOR + "\n")[:-1]
    first, *rest = tested.stderr.split(SEPARATOR)  # each of rest: an exit code, then the next model's stderr
    codes = [int(part.partition("\n")[0]) for part in rest]
    stderrs = [first, *(part.partition("\n")[2] for part in rest[:-1])]
    results = {
        name: subprocess.CompletedProcess(name, code, out, err)
        for name, out, err, code in zip(nets, stdouts, stderrs, codes, strict=True)
    }
    return folder, results


@pytest.mark.parametrize("name", NOT_THE_LABS)
def test_testing_a_model_that_does_not_take_mnist_as_the_lab_does_is_refused_saying_why(name, tested_models) -> None:
    folder, results = tested_models
    refused = results[name]
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr[-2000:]  # no warning first
    assert refused.stderr.startswith(f"keras-parity: error: --model_path: {name}.keras is not the lab's network")
    assert NOT_THE_LABS[name][1] in refused.stderr
    assert not (folder / "lightning_logs" / "keras" / name).exists()


@pytest.mark.parametrize("name", [*NOT_LOADABLE, *DAMAGED])
def test_a_model_keras_cannot_load_is_refused_naming_what_it_lacks_or_which_file_is_bad(name, tested_models) -> None:
    folder, results = tested_models
    refused = results[name]
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr[-2000:]
    assert refused.stderr.startswith(f"keras-parity: error: --model_path: {name}.keras is not a readable Keras model")
    assert {**NOT_LOADABLE, **DAMAGED}[name][1] in refused.stderr
    assert not (folder / "lightning_logs" / "keras" / name).exists()


def test_a_softmax_net_of_mnist_is_tested_with_keras_warnings_after_its_checks(tested_models) -> None:
    passed = tested_models[1]["softmax, compiled with adam"]
    assert passed.returncode == 0 and "Test accuracy: " in passed.stdout, passed.stderr[-2000:]
    assert "UserWarning: Skipping variable loading for optimizer" in passed.stderr, passed  # held, then shown


def test_running_out_of_memory_in_tensorflow_torch_or_numpy_is_one_line(capsys) -> None:
    """Real allocations too large for any machine (TensorFlow's ResourceExhaustedError is no RuntimeError: it
    was a traceback), each one line naming what did not fit, without the C++ place it failed in."""
    tf = keras_model.tf
    allocations = {
        "OOM when allocating tensor with shape[4194304,4194304]": lambda: tf.zeros((2**22, 2**22)) + 1,
        "DefaultCPUAllocator: can't allocate memory": lambda: torch.empty(2**50),
        "Unable to allocate 8.00 PiB": lambda: np.empty(2**50),
    }
    for words, allocate in allocations.items():
        with pytest.raises(SystemExit) as stopped:
            exit_on_user_error("keras-parity", allocate)
        line = capsys.readouterr().err
        assert stopped.value.code == 2 and line.count("\n") == 1, line
        assert line.startswith(f"keras-parity: error: the model or its batches do not fit in memory ({words}")


def test_keras_batches_train_exactly_as_keras_does_with_the_arrays() -> None:
    """The same weights after 3 batches from ``keras_batches`` as from ``fit(x, y, batch_size, shuffle=False)``
    (what keras-parity gave before, and the lab script gives), the last batch a short one."""
    x, y = keras_arrays(str(DATA_DIR), train=True)
    x, y = x[: 2 * 128 + 40], y[: 2 * 128 + 40]
    weights = []
    for inputs in ({"x": x, "y": y, "batch_size": 128}, {"x": keras_batches(x, y, 128)}):
        seed_everything(1)
        model = build_model(conv_layers=1)
        model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        model.fit(**inputs, epochs=1, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    assert len(keras_batches(x, y, 128)) == 3
    for ours, keras_own in zip(*weights, strict=True):
        np.testing.assert_array_equal(ours, keras_own)


SHORT = ["--epochs", "1", "--limit-batches", "3", "--data-dir", str(DATA_DIR)]
SHARED = Path("lightning_logs/keras/shared")


def keras_parity(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run(*args, cwd=cwd, command="keras_parity")


def files(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder``'s lightning_logs/ and models/, with the bytes of each file."""
    paths = [p for d in ("lightning_logs", "models") for p in (folder / d).rglob("*")]
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in paths}


def keras_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The (step, value) pairs of every scalar in a Keras run folder's own event files (not Keras' train/
    and validation/), read with TensorBoard's reader as conftest.scalars does: TensorFlow writes tensors."""
    found: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        acc = EventAccumulator(str(events), size_guidance={"tensors": 0})
        acc.Reload()
        for tag in (t for t in acc.Tags()["tensors"] if not t.startswith("_")):  # not the HParams session
            values = [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in acc.Tensors(tag)]
            found.setdefault(tag, []).extend(values)
    return found


@pytest.fixture(scope="module")
def trainings(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess], bytes]:
    """A folder where run ``shared`` trained models/a.keras (version_0), models/b.keras (version_1) and
    models/a.keras again with --overwrite (version_2); the three results, and a.keras's first bytes."""
    folder = tmp_path_factory.mktemp("keras_runs")
    (folder / "models" / "folder.keras").mkdir(parents=True)
    train = ["--mode", "train", *SHORT, "--run", "shared", "--model_path"]
    results = {"a": keras_parity(*train, "models/a.keras", cwd=folder)}
    first = (folder / "models/a.keras").read_bytes()
    results["b"] = keras_parity(*train, "models/b.keras", cwd=folder)
    results["a again"] = keras_parity(*train, "models/a.keras", "--overwrite", cwd=folder)
    for result in results.values():
        assert result.returncode == 0, result.stderr[-2000:]
    return folder, results, first


@pytest.mark.long  # uses `trainings`: three keras-parity trainings as processes (58 s in the suite)
def test_each_training_gets_a_version_folder_and_overwrite_replaces_the_model(trainings) -> None:
    folder, results, first = trainings
    assert sorted(run_versions(folder / SHARED)) == [0, 1, 2]
    assert "keras-parity: --overwrite: this training replaces models/a.keras" in results["a again"].stderr
    assert "replaces" not in results["a"].stderr + results["b"].stderr
    assert (folder / "models/a.keras").read_bytes() != first
    for training, version in (("a", 0), ("b", 1), ("a again", 2)):
        assert f"TensorBoard logs in {SHARED}/version_{version}" in results[training].stdout
        assert [step for step, _ in keras_scalars(folder / SHARED / f"version_{version}")["train/loss"]] == [3]
    for model, version in (("a", 2), ("b", 1)):
        record = json.loads((folder / f"models/{model}.keras.run.json").read_text())
        assert record["run"] == f"shared/version_{version}" and record["step"] == 3  # 3 batches, 1 epoch
    assert not list((folder / "models").glob(".*"))  # no temporary file left


@pytest.mark.long  # uses `trainings`
def test_a_test_logs_into_the_run_that_trained_the_model_at_its_last_step(trainings) -> None:
    folder, _, _ = trainings
    for model, version in (("a", 2), ("b", 1)):
        tested = keras_parity("--mode", "test", "--data-dir", str(DATA_DIR), "--model_path", f"models/{model}.keras",
                              cwd=folder)  # fmt: skip
        assert tested.returncode == 0, tested.stderr[-2000:]
        logged = keras_scalars(folder / SHARED / f"version_{version}")
        [(step, accuracy)] = logged["test/acc"]
        assert step == logged["train/loss"][-1][0] == 3
        assert f"Test accuracy: {100 * accuracy:.2f}%" in tested.stdout
    assert "test/acc" not in keras_scalars(folder / SHARED / "version_0")  # a's first training: not this model
    assert sorted(run_versions(folder / SHARED)) == [0, 1, 2]  # no folder more


@pytest.mark.long  # uses `trainings`
def test_a_model_keras_parity_did_not_train_logs_to_a_new_version_at_step_0(trainings) -> None:
    folder, _, _ = trainings
    models = folder / "models"
    shutil.copy(models / "a.keras", models / "lab.keras")  # no record: saved by the lab's script, say
    shutil.copy(models / "b.keras", models / "c.keras")  # with a record about another file
    shutil.copy(models / "a.keras.run.json", models / "c.keras.run.json")
    for model, note in (("lab", None), ("lab", None), ("c", "models/c.keras.run.json not used, it is about another")):
        tested = keras_parity("--mode", "test", "--data-dir", str(DATA_DIR), "--model_path", f"models/{model}.keras",
                              cwd=folder)  # fmt: skip
        assert tested.returncode == 0, tested.stderr[-2000:]
        assert note is None or note in tested.stderr
    runs = folder / "lightning_logs/keras"
    assert sorted(run_versions(runs / "lab")) == [0, 1] and sorted(run_versions(runs / "c")) == [0]
    for run_dir in (runs / "lab/version_0", runs / "lab/version_1", runs / "c/version_0"):
        assert [step for step, _ in keras_scalars(run_dir)["test/acc"]] == [0]


REFUSED = {
    "training to an existing model": (
        ["--mode", "train", *SHORT, "--model_path", "models/a.keras", "--run", "shared"],
        "--model_path: models/a.keras exists; give another file name, or --overwrite to replace it",
    ),
    "training to a folder, --overwrite or not": (
        ["--mode", "train", *SHORT, "--model_path", "models/folder.keras", "--overwrite"],
        "--model_path: models/folder.keras is a folder; give a .keras file name",
    ),
    "a run's version folder": (
        ["--mode", "train", *SHORT, "--model_path", "models/new.keras", "--run", "shared/version_0"],
        f"--run: {SHARED}/version_0 is another run's folder; give shared for a new version of that run",
    ),
    "a run inside a run's version folder": (
        ["--mode", "train", *SHORT, "--model_path", "models/new.keras", "--run", "shared/version_1/mine"],
        "--run: 'shared/version_1/mine' is not allowed; it is inside a run's version folder",
    ),
    "testing into another run than the training's": (
        ["--mode", "test", "--data-dir", str(DATA_DIR), "--model_path", "models/b.keras", "--run", "other"],
        f"--run: models/b.keras was trained in {SHARED}/version_1, where its test is logged; leave out --run",
    ),
}


@pytest.mark.long  # uses `trainings`
@pytest.mark.parametrize("case", list(REFUSED))
def test_writing_over_a_model_or_into_another_runs_folder_is_refused_and_changes_nothing(case, trainings) -> None:
    folder, _, _ = trainings
    args, expected = REFUSED[case]
    before = files(folder)
    result = run_in_process(*args, cwd=folder, command="keras_parity")  # a refusal: in this process
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.startswith("keras-parity")] == [
        f"keras-parity: error: {expected}"
    ]
    assert files(folder) == before  # the model's bytes, its record and every run folder as they were


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
