"""The lab's Keras network as a LightningModule (:class:`KerasNet`), and ``to_torch`` to carry a Keras
model's weights into it."""

from __future__ import annotations

import math
from itertools import zip_longest
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from keras_parity.nets import (
    ACTIVATIONS,
    KERAS_LR,
    KERAS_MOMENTUM,
    ChannelsLastFlatten,
    Dropout,
    KerasCNN,
    keras_settings,
)
from lab_cnn.errors import UserError
from lab_cnn.module import Classifier
from lab_cnn.nets import IMAGE_SIZE, all_knobs, named_as_model_knobs


class KerasNet(Classifier):
    """:class:`KerasCNN` trained like :class:`lab_cnn.LabNet` (same loop, metrics and logs); the net's knobs
    (``activation``, ``conv_layers``, ``filters``, ...) are KerasCNN's, taken as ``**knobs`` as LabNet takes
    LabCNN's.

    Args:
        lr: SGD learning rate (the Keras lab: 0.01).
        momentum: SGD momentum (the Keras lab: none).
        knobs: the net's, :class:`~keras_parity.nets.KerasCNN`'s arguments.
    """

    def __init__(self, lr: float = KERAS_LR, momentum: float = KERAS_MOMENTUM, **knobs: Any) -> None:
        knobs = all_knobs(KerasCNN, knobs)  # all of them in the hyperparameters, not only those given
        with named_as_model_knobs():
            net = KerasCNN(**knobs)
        super().__init__(net, lr, momentum)
        self.save_hyperparameters()


def to_torch(keras_model: Any) -> KerasNet:
    """A :class:`KerasNet` (in eval mode) carrying a Keras model's weights and BatchNorm statistics.

    The model is read by its structure, whatever its layers are named (a model built after another is
    named ``conv2d_2``, ...): a Sequential taking 28x28x1 images, of the lab's layers, Conv2D/
    BatchNormalization/MaxPooling2D/Dropout blocks, Flatten, Dense/BatchNormalization/Dropout blocks and
    a softmax Dense. Before anything is copied, every setting of each layer that changes what it computes
    is compared with the port's module at its place, and so are the shapes of its weights: a model that
    does not fit is refused in one line naming the first layer that does not.
    """
    if not isinstance(getattr(keras_model, "layers", None), list):
        raise UserError(
            f"to_torch: {type(keras_model).__name__} is not a Keras model; give one of keras_parity.build_model "
            "or keras.saving.load_model"
        )
    layers = [layer for layer in keras_model.layers if type(layer).__name__ != "InputLayer"]
    try:
        settings = keras_settings(keras_model)
    except UserError as e:
        raise UserError(f"to_torch: layer 1, {e}") from None
    # The port is built from the settings of the model's first Conv2D, which must be its layer 1: what
    # the port cannot be built with is refused there, before any comparison.
    if type(layers[0]).__name__ != "Conv2D":
        raise refusal(layers, 0, "the lab's network has a Conv2D here")
    inputs = [tuple(x.shape[1:]) for x in getattr(keras_model, "inputs", None) or []]  # none if never built
    if inputs and inputs != [(IMAGE_SIZE, IMAGE_SIZE, 1)]:
        shapes = ", ".join(map(str, inputs))
        raise refusal(layers, 0, f"input {shapes}, where the lab's network takes ({IMAGE_SIZE}, {IMAGE_SIZE}, 1)")
    activation = settings["activation"]
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        allowed = ", ".join(ACTIVATIONS)
        raise refusal(layers, 0, f"activation {activation!r}, where the lab's network has one of {allowed}")
    net = fitting_port(settings)
    blocks, kernel = net.hparams["conv_layers"] if net else 0, settings["kernel_size"]
    too_many = (
        f"conv block {blocks + 1}, where the lab's network's valid {kernel}x{kernel} convolutions fit "
        f"{blocks} in {IMAGE_SIZE}x{IMAGE_SIZE} images"
    )
    if net is None:
        raise refusal(layers, 0, too_many)
    ports = list(net.net.layers.children())  # type: ignore[union-attr]  # KerasCNN's Sequential
    for i, (layer, port) in enumerate(zip_longest(layers, ports)):
        why = unfit(layer, port, "softmax" if i == len(ports) - 1 else activation)
        if why and blocks < settings["conv_layers"] and isinstance(port, ChannelsLastFlatten):
            why = too_many if type(layer).__name__ == "Conv2D" else why  # the first conv block the port lacks
        if why:
            raise refusal(layers, i, why)
    with torch.no_grad():
        for layer, port in zip(layers, ports):
            for target, weight in zip(targets(port), layer.get_weights()):
                # float32 first: torch takes no bfloat16 arrays, and the port computes in float32
                in_keras_order(target).copy_(torch.from_numpy(np.asarray(weight, dtype=np.float32)))
    return net.eval()


def refusal(layers: list[Any], i: int, why: str) -> UserError:
    """The one line naming the model's layer ``i`` (from 0; past the last, the place after it) and why."""
    name = f"{layers[i].name} ({type(layers[i]).__name__})" if i < len(layers) else f"(missing after {layers[-1].name})"
    return UserError(f"to_torch: layer {i + 1}, {name}: {why}")


def fitting_port(settings: dict[str, Any]) -> KerasNet | None:
    """The port of a model's settings; if its valid convolutions do not fit that many conv blocks in
    28x28 images (the model's may, with padding 'same'), the port of as many as fit, so that comparing
    the layers finds the first that differs; None if not one fits."""
    for blocks in range(settings["conv_layers"], 0, -1):
        try:
            return KerasNet(**{**settings, "conv_layers": blocks})
        except UserError:  # lab_cnn.nets.output_size: a kernel larger than the map it is given
            continue
    return None


def unfit(layer: Any, port: nn.Module | None, activation: str) -> str | None:
    """Why a Keras layer cannot be carried into the port's module at its place (where a Conv2D or Dense
    has ``activation``), or None when it can: its kind, each setting of :func:`port_config`, and the
    shapes of its weights."""
    kind = {nn.MaxPool2d: "MaxPooling2D", ChannelsLastFlatten: "Flatten", Dropout: "Dropout"}.get(type(port))
    if isinstance(port, nn.Sequential):
        kind = "Conv2D" if isinstance(port.layer, nn.Conv2d) else "Dense"
    elif isinstance(port, nn.modules.batchnorm._BatchNorm):
        kind = "BatchNormalization"
    if layer is None or port is None:
        return f"the lab's network has {f'a {kind}' if port is not None else 'nothing'} here"
    if type(layer).__name__ != kind:
        return f"the lab's network has a {kind} here"
    if not type(layer).__module__.startswith("keras."):  # a class of one's own may compute anything
        return f"a {kind} of {type(layer).__module__}, where the lab's network has Keras' own"
    policy = getattr(getattr(layer, "dtype_policy", None), "name", "float32")
    if policy not in COMPUTED_EXACTLY:
        return f"dtype {policy!r}, where the lab's network computes in float32"
    config = layer.get_config()
    if kind == "BatchNormalization" and config.get("axis") == (3 if isinstance(port, nn.BatchNorm2d) else 1):
        config["axis"] = -1  # the channels of (N, H, W, C) or (N, C), counted from the front instead
    for key, wanted in port_config(port, activation).items():
        value: Any = config.get(key, wanted)  # a key this Keras does not have is its default, the port's
        value = tuple(value) if isinstance(value, list) else value  # a config read back from JSON
        numbers = isinstance(wanted, float) and isinstance(value, (int, float))
        same = math.isclose(value, wanted, rel_tol=1e-6) if numbers else value == wanted
        if not same:
            return f"{key} {value!r}, where the lab's network has {wanted!r}"
    shapes = [tuple(w.shape) for w in layer.get_weights()]
    expected = [tuple(in_keras_order(t).shape) for t in targets(port)]
    if shapes != expected:
        return f"weights of shapes {shapes}, where the lab's network has {expected}"
    return None


CHANNELS_LAST = "channels_last"  # the port's Flatten reads Keras' (H, W, C) order
# Keras layers' dtypes whose outputs the float32 port gives (float64 ones to within float32's rounding); lower
# precisions (bfloat16, float16, mixed_*) compute other numbers
COMPUTED_EXACTLY = ("float32", "float64")


def port_config(port: Any, activation: str) -> dict[str, Any]:
    """What the port's module computes, in the keys and values of the config of the Keras layer at its
    place (constraints, initializers and regularizers change no output, and are not here)."""

    def pair(value: int | tuple[int, int]) -> tuple[int, int]:
        return value if isinstance(value, tuple) else (value, value)

    def padding(module: Any) -> str:
        return "valid" if pair(module.padding) == (0, 0) else "same"  # the port pads nothing: Keras' 'valid'

    if isinstance(port, nn.Sequential):
        module: Any = port.layer
        bias = {"use_bias": module.bias is not None, "lora_rank": None}
        if isinstance(module, nn.Linear):
            return {"activation": activation, "units": module.out_features, **bias}
        return {
            "activation": activation,
            "filters": module.out_channels,
            "kernel_size": module.kernel_size,
            "strides": module.stride,
            "padding": padding(module),
            "dilation_rate": module.dilation,
            "groups": module.groups,
            "data_format": CHANNELS_LAST,
            **bias,
        }
    if isinstance(port, nn.MaxPool2d):
        return {
            "pool_size": pair(port.kernel_size),
            "strides": pair(port.stride),
            "padding": padding(port),
            "data_format": CHANNELS_LAST,
        }
    if isinstance(port, Dropout):
        return {"rate": port.p, "noise_shape": None}
    if isinstance(port, nn.modules.batchnorm._BatchNorm):
        return {
            "axis": -1,
            "epsilon": port.eps,
            "momentum": 1 - float(port.momentum or 0),  # Keras' share of the moving statistics kept, torch's replaced
            "center": port.affine,
            "scale": port.affine,
            "renorm": False,
        }
    return {"data_format": CHANNELS_LAST}


def targets(port: Any) -> list[Any]:
    """The port's tensors that a Keras layer's weights go to, in the order of ``layer.get_weights()``."""
    if isinstance(port, nn.Sequential):
        layer: Any = port.layer
        return [layer.weight] + ([layer.bias] if layer.bias is not None else [])
    if isinstance(port, nn.modules.batchnorm._BatchNorm):
        return [port.weight, port.bias, port.running_mean, port.running_var]
    return []


def in_keras_order(tensor: Tensor) -> Tensor:
    """A view of a port tensor with its axes in Keras' order: kernels (h, w, in, out), Dense (in, out)."""
    return tensor.permute(*{1: (0,), 2: (1, 0), 4: (2, 3, 1, 0)}[tensor.dim()])
