"""The lab's Keras network as a LightningModule (:class:`KerasNet`), and ``to_torch`` to carry a Keras
model's weights into it."""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

import torch
from torch import nn

from keras_parity.nets import (
    KERAS_LR,
    KERAS_MOMENTUM,
    POOL_SIZE,
    ChannelsLastFlatten,
    Dropout,
    KerasCNN,
    keras_settings,
)
from lab_cnn.errors import UserError
from lab_cnn.module import Classifier


class KerasNet(Classifier):
    """:class:`KerasCNN` trained like :class:`lab_cnn.LabNet` (same loop, metrics and logs).

    Args:
        activation: relu, sigmoid, tanh, leaky_relu, elu or gelu, for Conv2D and hidden Dense layers.
        conv_layers: number of Conv2D blocks.
        filters: filters of every Conv2D.
        kernel_size: side of every Conv2D kernel.
        dense_layers: number of hidden Dense blocks.
        dense_units: units of every hidden Dense.
        lr: SGD learning rate (the Keras lab: 0.01).
        momentum: SGD momentum (the Keras lab: none).
        steps_per_call: optimizer steps (batches) per Lightning training step; more is faster on a GPU.
    """

    def __init__(
        self,
        activation: str = "relu",
        conv_layers: int = 2,
        filters: int = 64,
        kernel_size: int = 3,
        dense_layers: int = 3,
        dense_units: int = 128,
        lr: float = KERAS_LR,
        momentum: float = KERAS_MOMENTUM,
        steps_per_call: int = 1,
    ) -> None:
        net = KerasCNN(activation, conv_layers, filters, kernel_size, dense_layers, dense_units)
        super().__init__(net, lr, momentum, steps_per_call)
        self.save_hyperparameters()


def to_torch(keras_model: Any) -> KerasNet:
    """A :class:`KerasNet` (in eval mode) carrying a Keras model's weights and BatchNorm statistics.

    The model is read by its structure, whatever its layers are named (a model built after another is
    named ``conv2d_2``, ...): a Sequential of the lab's layers, Conv2D/BatchNormalization/MaxPooling2D/
    Dropout blocks, Flatten, Dense/BatchNormalization/Dropout blocks and a softmax Dense. A model that
    is not is refused in one line naming the first layer that does not fit.
    """
    layers = [layer for layer in keras_model.layers if type(layer).__name__ != "InputLayer"]
    try:
        settings = keras_settings(keras_model)
    except UserError as e:
        raise UserError(f"to_torch: {e}") from None
    activation = settings["activation"]
    net = KerasNet(**settings)
    ports = [module for _, module in net.net.layers.named_children()]
    for i, (layer, port) in enumerate(zip_longest(layers, ports)):
        why = unfit(layer, port, "softmax" if i == len(ports) - 1 else activation)
        if why:
            name = (
                f"{layer.name} ({type(layer).__name__})" if layer is not None else f"(missing after {layers[-1].name})"
            )
            raise UserError(f"to_torch: layer {i + 1}, {name}: {why}")
    with torch.no_grad():
        for layer, port in zip(layers, ports):
            weights = [torch.from_numpy(w) for w in layer.get_weights()]
            if isinstance(port, nn.Sequential):  # Conv2D or Dense with its activation
                kernel = weights[0].permute(3, 2, 0, 1) if isinstance(port.layer, nn.Conv2d) else weights[0].T
                port.layer.weight.copy_(kernel)
                port.layer.bias.copy_(weights[1])
            elif isinstance(port, nn.modules.batchnorm._BatchNorm):
                for target, value in zip((port.weight, port.bias, port.running_mean, port.running_var), weights):
                    target.copy_(value)
    return net.eval()


def unfit(layer: Any, port: nn.Module | None, activation: str) -> str | None:
    """Why a Keras layer cannot be carried into the port's module at its place (where a Conv2D or Dense
    has ``activation``), or None when it can."""
    kind = {nn.MaxPool2d: "MaxPooling2D", ChannelsLastFlatten: "Flatten", Dropout: "Dropout"}.get(type(port))
    if isinstance(port, nn.Sequential):
        kind = "Conv2D" if isinstance(port.layer, nn.Conv2d) else "Dense"
    elif isinstance(port, nn.modules.batchnorm._BatchNorm):
        kind = "BatchNormalization"
    if layer is None or port is None:
        return f"the lab's network has {'a ' + kind if port is not None else 'nothing'} here"
    config = layer.get_config()
    if type(layer).__name__ != kind:
        return f"the lab's network has a {kind} here"
    if kind in ("Conv2D", "Dense"):
        if config["activation"] != activation:
            return f"activation {config['activation']!r}, where the lab's network has {activation!r}"
        if kind == "Conv2D" and (tuple(config["strides"]) != (1, 1) or config["padding"] != "valid"):
            return "strides or padding other than the lab's (1, 1) and 'valid'"
        outputs = port.layer.out_channels if kind == "Conv2D" else port.layer.out_features
        if (config.get("filters") or config.get("units")) != outputs:
            return (
                f"{config.get('filters') or config.get('units')} outputs, where every layer of its kind has {outputs}"
            )
    if kind == "MaxPooling2D" and (
        tuple(config["pool_size"]) != (POOL_SIZE,) * 2 or tuple(config["strides"]) != (POOL_SIZE,) * 2
    ):
        return f"pool size or strides other than the lab's {POOL_SIZE}"
    if kind == "Dropout" and abs(config["rate"] - port.p) > 1e-9:
        return f"rate {config['rate']}, where the lab's network has {port.p}"
    if kind == "BatchNormalization" and (
        abs(config["epsilon"] - port.eps) > 1e-12 or not (config["center"] and config["scale"])
    ):
        return (
            f"epsilon {config['epsilon']} or no center/scale, where the lab's network has epsilon {port.eps} with both"
        )
    return None
