"""What each layer of a net makes of one digit: the output of every layer in order, with its shape and,
for convolution and pooling, the lab's ``n_out = floor((n_in + 2p - k) / s) + 1`` filled in.

TensorBoard's feature maps after a test (lab_cnn.inspection) and the explorer's page (lab_cnn.explore)
both show these; a net is any of the lab's, whose layers are the children of ``net.layers``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.utils import make_grid

from lab_cnn.nets import size_formula

SIZED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)  # the layers whose output size the lab's formula gives
UNITS_PER_ROW = 10  # a dense layer's units are drawn as rows of this many cells (of more than 100: 40)
SMALLEST_MAP = 24  # pixels: a map is drawn at least this large
UNIT_CELL = 12  # pixels: a dense layer's unit
PADDING = 2  # pixels of background around each map


@dataclass
class LayerOutput:
    """One layer's output for one digit: (C, H, W) maps, or (units,) for a dense layer."""

    name: str
    kind: str  # the module's type, e.g. Conv2d, or Conv2d+ReLU for a Keras layer with its activation
    output: Tensor
    caption: str  # e.g. conv1: floor((28 + 2*0 - 5) / 1) + 1 = 24 -> 24x24x10


def layer_outputs(net: nn.Module, image: Tensor) -> list[LayerOutput]:
    """Every layer's output for ``image`` (1x28x28, normalized as the net was trained), in order: the
    net's own forward pass, one child of ``net.layers`` after the other. The net should be in eval mode."""
    x, found = image[None], []
    with torch.no_grad():
        for name, layer in net.layers.named_children():  # type: ignore[union-attr]  # the lab's nets have one
            n_in = x.shape[-1] if x.dim() == 4 else None
            x = layer(x)
            found.append(LayerOutput(name, kind(layer), x[0], caption(name, layer, n_in, x[0])))
    return found


def kind(layer: nn.Module) -> str:
    return "+".join(type(m).__name__ for m in layer) if isinstance(layer, nn.Sequential) else type(layer).__name__


def shape_text(output: Tensor) -> str:
    """HxWxC as the lab writes a map's shape (channels last), or the number of units."""
    return "x".join(map(str, [*output.shape[1:], output.shape[0]])) if output.dim() == 3 else str(output.shape[0])


def caption(name: str, layer: nn.Module, n_in: int | None, output: Tensor) -> str:
    sized = next((m for m in layer.modules() if isinstance(m, SIZED)), None)
    if sized is None or n_in is None:
        return f"{name}: {shape_text(output)}"
    kernel, stride, padding = (first(getattr(sized, a)) for a in ("kernel_size", "stride", "padding"))
    return f"{name}: {size_formula(n_in, kernel, stride, padding)} = {output.shape[-1]} -> {shape_text(output)}"


def first(value: int | tuple[int, ...]) -> int:
    """A square kernel's size, stride or padding (the lab's are all square)."""
    return value if isinstance(value, int) else value[0]


def as_maps(output: Tensor) -> Tensor:
    """(N, 1, H, W) images of an output: one per channel, or a dense layer's units in rows of cells
    (the last row filled with NaN, drawn as the background)."""
    if output.dim() == 3:
        return output[:, None]
    per_row = UNITS_PER_ROW if len(output) <= 10 * UNITS_PER_ROW else 4 * UNITS_PER_ROW  # a flatten: 40 a row
    rows = -(-len(output) // per_row)
    padded = torch.full((rows * per_row,), float("nan"))
    padded[: len(output)] = output
    return padded.view(1, 1, rows, per_row)


def maps_image(outputs: list[Tensor], columns: int | None = None) -> Tensor:
    """One grayscale image (1, H, W) in [0, 1] of one layer's outputs for one or more digits, each digit's
    maps in rows of ``columns`` (default: all in one row), one digit under the other; one scale for the whole
    layer, so a channel that is weak for this digit looks weak. Maps are enlarged to SMALLEST_MAP pixels."""
    outputs = [o.detach().float().cpu() for o in outputs]
    maps = [as_maps(o) for o in outputs]
    values = torch.cat([m.flatten() for m in maps])
    values = values[values.isfinite()]
    low, high = (values.min(), values.max()) if len(values) else (torch.tensor(0.0), torch.tensor(1.0))
    rows = []
    for output, m in zip(outputs, maps):
        scaled = ((m - low) / (high - low).clamp_min(1e-12)).nan_to_num(1.0)  # NaN: the background
        cell = max(1, SMALLEST_MAP // min(m.shape[-2:])) if output.dim() == 3 else UNIT_CELL
        scaled = F.interpolate(scaled, scale_factor=cell, mode="nearest")
        # make_grid pads a grid of several maps, not a single one: that is padded here alike
        grid = make_grid(scaled, nrow=columns or len(scaled), padding=PADDING, pad_value=1.0)[:1]
        rows.append(grid if len(scaled) > 1 else F.pad(scaled[0], (PADDING,) * 4, value=1.0))
    width = max(r.shape[-1] for r in rows)
    return torch.cat([F.pad(r, (0, width - r.shape[-1]), value=1.0) for r in rows], dim=1)


def conv_kernels(layer: nn.Module, inputs_shown: int = 8) -> Tensor | None:
    """A conv layer's kernels as one grayscale image: a row per output channel, a column per input channel
    (the first ``inputs_shown``), or, on a one-channel input, in rows of 16; None for a layer without a convolution."""
    conv = next((m for m in layer.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return None
    weights = conv.weight.detach().float().cpu()[:, :inputs_shown]
    if weights.shape[1] == 1:
        return maps_image([weights[:, 0]], columns=16)
    return maps_image(list(weights), columns=weights.shape[1])
