"""The lab's Keras network as a LightningModule (:class:`KerasNet`), and ``to_torch`` to carry a Keras
model's weights into it."""

from __future__ import annotations

from typing import Any

import torch

from keras_parity.nets import KERAS_LR, KERAS_MOMENTUM, KerasCNN
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
    """A :class:`KerasNet` (in eval mode) carrying the Keras model's weights and BatchNorm statistics."""
    convs = [layer for layer in keras_model.layers if type(layer).__name__ == "Conv2D"]
    denses = [layer for layer in keras_model.layers if type(layer).__name__ == "Dense"]
    net = KerasNet(
        activation=convs[0].get_config()["activation"],
        conv_layers=len(convs),
        filters=convs[0].filters,
        kernel_size=convs[0].kernel_size[0],
        dense_layers=len(denses) - 1,
        dense_units=denses[0].units,
    )
    torch_layers = dict(net.net.layers.named_children())
    with torch.no_grad():
        for layer in keras_model.layers:
            weights = [torch.from_numpy(w) for w in layer.get_weights()]
            if not weights:
                continue
            target = torch_layers[layer.name]
            kind = type(layer).__name__
            if kind == "Conv2D":
                target.layer.weight.copy_(weights[0].permute(3, 2, 0, 1))
                target.layer.bias.copy_(weights[1])
            elif kind == "Dense":
                target.layer.weight.copy_(weights[0].T)
                target.layer.bias.copy_(weights[1])
            elif kind == "BatchNormalization":
                for param, value in zip((target.weight, target.bias, target.running_mean, target.running_var), weights):
                    param.copy_(value)
    return net.eval()
