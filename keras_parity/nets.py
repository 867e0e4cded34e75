"""The lab's Keras network, ported exactly to PyTorch as a plain ``nn.Module``.

Where the frameworks differ the port follows Keras: the activation is part of Conv2D/Dense (before
BatchNorm), BatchNorm has eps 1e-3 and momentum 0.01 (Keras' 0.99), kernels are Glorot-uniform
with zero biases, and Flatten reads channels-last so Dense weights carry over unchanged.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from lab_cnn.errors import SettingError, UserError
from lab_cnn.nets import IMAGE_SIZE, NUM_CLASSES, Weights, output_size
from lab_cnn.validators import choice, positive_int

# Keras' activations by name, with Keras' defaults (its leaky_relu slope is 0.2).
ACTIVATIONS: dict[str, Any] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "gelu": nn.GELU,
}
CONV_DROPOUT, DENSE_DROPOUT, POOL_SIZE = 0.25, 0.5, 2
# A layer is Python objects besides its weights: a typo's million dense layers would fill the memory as they are made
MAX_DENSE_LAYERS = 1000  # (the lab's net has 3)
KERAS_LR, KERAS_MOMENTUM = 0.01, 0.0  # the Keras lab's SGD(learning_rate=0.01), no momentum
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # Keras' epsilon and 1 - its momentum 0.99


class Dropout(nn.Dropout):
    """Keras' Dropout: inverted dropout at rate ``p``.

    On the CPU the keep-mask is drawn from 16 random bits per element (the rate rounded to 1/65536,
    exact for 0.25 and 0.5), a quarter of the random draws of a ``torch.rand`` mask (benchmarks/RESULTS.md
    has what that saves). The mask has the input's memory layout.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        keep = 1 - self.p
        return x * keep_mask(x, keep).to(x.dtype).mul_(1 / keep)


def keep_mask(x: Tensor, keep: float) -> Tensor:
    """A boolean mask shaped and laid out like ``x``, each element True with probability ``keep``."""
    layout = x.permute(0, 2, 3, 1) if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) else x
    bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # 64 random bits each
    mask = bits.view(torch.int16)[: x.numel()] < round(keep * 2**16) - 2**15
    mask = mask.view(layout.shape)
    return mask.permute(0, 3, 1, 2) if layout is not x else mask


def keras_names() -> Callable[[str], str]:
    """Keras' automatic layer names within one model: conv2d, conv2d_1, ..."""
    seen: Counter[str] = Counter()

    def name(kind: str) -> str:
        seen[kind] += 1
        return kind if seen[kind] == 1 else f"{kind}_{seen[kind] - 1}"

    return name


def activated(layer: nn.Module, activation: nn.Module) -> nn.Sequential:
    """A Keras layer with its ``activation=``: the layer, then the activation."""
    return nn.Sequential(OrderedDict(layer=layer, activation=activation))


class ChannelsLastFlatten(nn.Module):
    """Keras' Flatten of an (H, W, C) map: reads a (C, H, W) tensor in channels-last order."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


class KerasCNN(nn.Module):
    """The lab's Keras network (report part a), layer for layer and name for name.

    ``Conv2D(filters, k, activation) -> BatchNormalization -> MaxPooling2D(2) -> Dropout(0.25)`` per conv
    block; ``Flatten``; ``Dense(units, activation) -> BatchNormalization -> Dropout(0.5)`` per dense
    layer; ``Dense(10)`` with (log-)softmax.

    Args:
        activation: relu, sigmoid, tanh, leaky_relu, elu or gelu, for Conv2D and hidden Dense layers.
        conv_layers: number of Conv2D blocks.
        filters: filters of every Conv2D.
        kernel_size: side of every Conv2D kernel.
        dense_layers: number of hidden Dense blocks.
        dense_units: units of every hidden Dense.
    """

    def __init__(
        self,
        activation: str = "relu",
        conv_layers: int = 2,
        filters: int = 64,
        kernel_size: int = 3,
        dense_layers: int = 3,
        dense_units: int = 128,
    ) -> None:
        super().__init__()
        act = choice("activation", activation, ACTIVATIONS)
        filters, kernel_size = positive_int("filters", filters), positive_int("kernel_size", kernel_size)
        dense_units = positive_int("dense_units", dense_units)
        name = keras_names()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels, size, weights = 1, IMAGE_SIZE, Weights()
        for _ in range(positive_int("conv_layers", conv_layers)):
            conv = name("conv2d")
            size = output_size(conv, size, kernel_size)
            weights.add(conv, "filters", (filters, channels, kernel_size, kernel_size))
            layers[conv] = activated(nn.Conv2d(channels, filters, kernel_size), act())
            layers[name("batch_normalization")] = nn.BatchNorm2d(filters, eps=BN_EPS, momentum=BN_MOMENTUM)
            pool = name("max_pooling2d")
            layers[pool] = nn.MaxPool2d(POOL_SIZE)
            size = output_size(pool, size, POOL_SIZE, stride=POOL_SIZE)
            layers[name("dropout")] = Dropout(CONV_DROPOUT)
            channels = filters
        layers[name("flatten")] = ChannelsLastFlatten()
        features = channels * size * size
        if (dense_layers := positive_int("dense_layers", dense_layers)) > MAX_DENSE_LAYERS:
            raise SettingError(
                "dense_layers", f"{dense_layers} is not allowed; use a whole number in [1, {MAX_DENSE_LAYERS}]"
            )
        weights.add("dense", "dense_units", (dense_units, features))  # all counted before any is made
        weights.add("each later dense layer", "dense_units", (dense_units, dense_units), times=dense_layers - 1)
        weights.add("the last dense layer", "dense_units", (NUM_CLASSES, dense_units))
        for _ in range(dense_layers):
            layers[name("dense")] = activated(nn.Linear(features, dense_units), act())
            layers[name("batch_normalization")] = nn.BatchNorm1d(dense_units, eps=BN_EPS, momentum=BN_MOMENTUM)
            layers[name("dropout")] = Dropout(DENSE_DROPOUT)
            features = dense_units
        layers[name("dense")] = activated(nn.Linear(features, NUM_CLASSES), nn.LogSoftmax(dim=-1))
        self.layers = nn.Sequential(layers)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)  # type: ignore[arg-type]  # both layers have a bias here

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def keras_settings(keras_model: Any) -> dict[str, Any]:
    """The knobs of :class:`KerasCNN` that describe a Keras model built the lab's way, read from its layers."""
    layers = [layer for layer in keras_model.layers if type(layer).__name__ != "InputLayer"]
    convs = [layer for layer in layers if type(layer).__name__ == "Conv2D"]
    denses = [layer for layer in layers if type(layer).__name__ == "Dense"]
    if not convs or len(denses) < 2:
        first = f"{layers[0].name} ({type(layers[0]).__name__})" if layers else "(no layers)"
        raise UserError(f"{first}: the model is not the lab's network (Conv2D blocks, then Dense blocks)")
    return {
        "activation": convs[0].get_config()["activation"],
        "conv_layers": len(convs),
        "filters": convs[0].filters,
        "kernel_size": convs[0].kernel_size[0],
        "dense_layers": len(denses) - 1,
        "dense_units": denses[0].units,
    }
