"""A layer table like Keras' ``model.summary()``, computed by running one blank image through the net."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lab_cnn.nets import IMAGE_SIZE

Row = tuple[str, str, tuple[int, ...], int, int]  # name, type, output shape, trainable, non-trainable


def batchnorm_statistics(module: nn.Module) -> int:
    """How many BatchNorm running means and variances ``module`` holds (Keras counts them as parameters)."""
    return sum(b.numel() for n, b in module.named_buffers() if n.endswith(("running_mean", "running_var")))


def total_params(net: nn.Module) -> int:
    """Parameters as Keras' ``model.summary()`` counts them: trainable, frozen and BatchNorm statistics."""
    return sum(p.numel() for p in net.parameters()) + batchnorm_statistics(net)


def layer_rows(net: Any) -> list[Row]:
    """One row per layer of ``net.layers``; BatchNorm running statistics count as non-trainable."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        layer.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        for name, layer in net.layers.named_children()
    ]
    training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE, device=next(net.parameters()).device))
    finally:
        net.train(training)
        for hook in hooks:
            hook.remove()
    rows = []
    for name, layer in net.layers.named_children():
        trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in layer.parameters() if not p.requires_grad)
        stats = batchnorm_statistics(layer)
        kind = "+".join(type(m).__name__ for m in layer) if isinstance(layer, nn.Sequential) else type(layer).__name__
        rows.append((name, kind, shapes[name], trainable, frozen + stats))
    return rows


def format_summary(net: nn.Module) -> str:
    """The table, then total, trainable and non-trainable parameter counts."""
    rows = layer_rows(net)
    lines = [f"{'Layer (type)':<44}{'Output Shape':<20}{'Param #':>12}"]
    for name, kind, shape, trainable, frozen in rows:
        lines.append(f"{f'{name} ({kind})':<44}{str(shape):<20}{trainable + frozen:>12,}")
    trainable = sum(r[3] for r in rows)
    frozen = sum(r[4] for r in rows)
    lines += [
        f"Total params: {trainable + frozen:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {frozen:,}",
    ]
    return "\n".join(lines)
