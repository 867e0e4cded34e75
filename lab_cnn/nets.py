"""The lab's PyTorch net as a plain ``nn.Module``, with the knobs the lab asks students to change."""

from __future__ import annotations

import inspect
import itertools
import math
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from lab_cnn.errors import SettingError, UserError
from lab_cnn.validators import choice, drop_rate, positive_int

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}
POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
IMAGE_SIZE = 28  # MNIST images are 28 x 28 x 1
NUM_CLASSES = 10  # the digits 0-9


def size_formula(n_in: int, kernel: int, stride: int = 1, padding: int = 0) -> str:
    """The lab's ``floor((n_in + 2p - k) / s) + 1`` with the numbers filled in."""
    return f"floor(({n_in} + 2*{padding} - {kernel}) / {stride}) + 1"


def output_size(layer: str, n_in: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """The lab's ``n_out = floor((n_in + 2p - k) / s) + 1``; a kernel larger than its input is refused."""
    n_out = (n_in + 2 * padding - kernel) // stride + 1
    if kernel > n_in + 2 * padding:
        raise UserError(
            f"{layer}: a {kernel}x{kernel} kernel does not fit its {n_in}x{n_in} input: "
            f"n_out = floor((n_in + 2p - k) / s) + 1 = {size_formula(n_in, kernel, stride, padding)} = {n_out}"
        )
    return n_out


class Weights:
    """The net's weights counted as its layers are made, each layer's before torch allocates it: a net whose
    float32 weights would not fit in this machine's memory is refused naming the layer, its shape and its knob
    (torch would fail to allocate them, or, past 2**63, fail to count them with a traceback)."""

    def __init__(self) -> None:
        self.count = 0
        self.memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def add(self, layer: str, key: str, shape: tuple[int, ...], times: int = 1) -> None:
        """A layer of weights of ``shape`` (outputs first, as torch's) and a bias per output, sized by ``key``
        (``times`` such layers)."""
        self.count += times * (math.prod(shape) + shape[0])
        if 4 * self.count > self.memory:
            raise SettingError(
                key,
                f"{layer}'s weight of shape {shape} would bring the net to {self.count:.3g} weights, "
                f"{4 * self.count / 2**30:.3g} GiB of float32, more than this machine's {self.memory / 2**30:.0f} GiB "
                "of memory",
            )


def all_knobs(net: type[nn.Module], given: dict[str, Any]) -> dict[str, Any]:
    """Every knob of ``net``: those ``given``, the rest at the net's defaults. A LightningModule that takes
    its net's knobs as ``**knobs`` records them all this way (its hyperparameters, config.yaml)."""
    defaults = {k: p.default for k, p in inspect.signature(net).parameters.items()}
    return {**defaults, **given}


@contextmanager
def named_as_model_knobs() -> Iterator[None]:
    """Around a net built by a model that takes the net's knobs as its own: a knob the net refuses is named as the
    model's config, command line and ``lab_cnn.fit(model=...)`` name it (``model.kernel_size``, not ``kernel_size``).
    (A context, not a function that builds the net: jsonargparse finds a model's knobs by following the
    ``Net(**knobs)`` call in its ``__init__``.)"""
    try:
        yield
    except SettingError as e:
        raise e.under("model") from None


def as_list(key: str, value: int | Sequence[int]) -> list[int]:
    """One whole number or a non-empty list of them, as a list of positive ints."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise SettingError(key, "an empty list is not allowed; give at least one whole number >= 1")
    return [positive_int(key, v) for v in values]


class LabCNN(nn.Module):
    """The lab's PyTorch net (report part b), one knob per thing the lab changes.

    Each conv block is conv -> [Dropout2d, from the second block on] -> pool -> activation, i.e. the
    lab's ``relu(max_pool2d(conv2_drop(conv2(x)), 2))``; then Linear -> activation -> dropout per
    hidden layer, the output Linear and log_softmax. The flatten size follows from the layers.

    Args:
        conv_channels: output channels of each conv block; its length is the number of blocks.
        kernel_size: side of every conv kernel.
        pool: ``max`` or ``avg`` pooling.
        pool_size: side (and stride) of every pooling window.
        activation: relu, sigmoid, tanh, leaky_relu, elu or gelu, for conv blocks and hidden layers.
        hidden_units: width of the hidden layer, or a list of widths for several.
        dropout: dropout rate after each hidden layer.
        conv_dropout: Dropout2d rate after the second and later convs.
    """

    def __init__(
        self,
        conv_channels: Sequence[int] = (10, 20),
        kernel_size: int = 5,
        pool: str = "max",
        pool_size: int = 2,
        activation: str = "relu",
        hidden_units: int | Sequence[int] = 50,
        dropout: float = 0.5,
        conv_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        act = choice("activation", activation, ACTIVATIONS)
        pooling = choice("pool", pool, POOLS)
        kernel_size, pool_size = positive_int("kernel_size", kernel_size), positive_int("pool_size", pool_size)
        dropout, conv_dropout = drop_rate("dropout", dropout), drop_rate("conv_dropout", conv_dropout)

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels, size, weights = 1, IMAGE_SIZE, Weights()
        for i, out_channels in enumerate(as_list("conv_channels", conv_channels), start=1):
            size = output_size(f"conv{i}", size, kernel_size)
            weights.add(f"conv{i}", "conv_channels", (out_channels, channels, kernel_size, kernel_size))
            layers[f"conv{i}"] = nn.Conv2d(channels, out_channels, kernel_size)
            if i > 1:
                layers[f"conv{i}_drop"] = nn.Dropout2d(conv_dropout)
            layers[f"pool{i}"] = pooling(pool_size)
            size = output_size(f"pool{i}", size, pool_size, stride=pool_size)
            layers[f"act{i}"] = act()
            channels = out_channels
        layers["flatten"] = nn.Flatten()
        features = channels * size * size
        hidden = as_list("hidden_units", hidden_units)
        widths = [features, *hidden, NUM_CLASSES]
        for i, (inputs, units) in enumerate(itertools.pairwise(widths), start=1):  # all counted before any is made
            weights.add(f"fc{i}", "hidden_units", (units, inputs))
        for i, units in enumerate(hidden, start=1):
            layers[f"fc{i}"] = nn.Linear(features, units)
            layers[f"fc{i}_act"] = act()
            layers[f"fc{i}_drop"] = nn.Dropout(dropout)
            features = units
        layers[f"fc{len(hidden) + 1}"] = nn.Linear(features, NUM_CLASSES)
        layers["log_softmax"] = nn.LogSoftmax(dim=-1)
        self.layers = nn.Sequential(layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
