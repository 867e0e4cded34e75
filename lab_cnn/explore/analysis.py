"""What the explorer's page shows, without the page: a digit prepared as the net sees it, what each layer of a
trained net makes of it, the class probabilities and a saliency map, drawn as HTML (lab_cnn.explore.page
puts it on the page). Every function here is called by the page and by the tests alike."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import cached_property
from html import escape
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image
from torch import Tensor

from lab_cnn.features import LayerOutput, conv_kernels, layer_outputs, maps_image
from lab_cnn.handwriting import mnist_style, read_digit
from lab_cnn.mnist import normalize
from lab_cnn.nets import IMAGE_SIZE, NUM_CLASSES

INTEGRATION_STEPS = 32  # Integrated Gradients' steps from the blank image to the digit, in one batch
INPUT_ZOOM = 6  # the 28x28 drawn 168 px wide
MAX_WIDTH = 640  # pixels: the widest a layer's maps are shown
KERNEL_INPUTS = 8  # the kernels of a conv layer's first 8 input channels are shown


@dataclass
class ExploredNet:
    """A trained net as the page shows it: its label, the model (in eval mode), how its data was normalized."""

    label: str
    model: Any  # a lab_cnn Classifier: .net is the plain nn.Module with .layers
    normalize: Literal["standard", "unit"]  # as the net's training images were (lab_cnn.mnist.normalize)

    @cached_property
    def kernel_figures(self) -> dict[str, str]:
        """Each conv layer's kernels as a figure, by layer name; drawn once, as the weights do not change. Those
        of a layer with several input channels are folded away (the first KERNEL_INPUTS of them)."""
        figures = {}
        for name, layer in self.model.net.layers.named_children():
            kernels = conv_kernels(layer, KERNEL_INPUTS)
            if kernels is None:
                continue
            conv = next(m for m in layer.modules() if isinstance(m, torch.nn.Conv2d))
            out_channels, in_channels, k, _ = conv.weight.shape
            text = f"{name} kernels: {out_channels} of {k}x{k}x{in_channels}"
            text += f" (the first {KERNEL_INPUTS} input channels)" if in_channels > KERNEL_INPUTS else ""
            figures[name] = figure(text, gray(kernels), "kernels", folded=in_channels > 1)
        return figures


@dataclass
class Explained:
    """One net's view of one digit."""

    probabilities: list[float]  # of the digits 0-9
    layers: list[LayerOutput]
    saliency: np.ndarray  # 28x28, how much each pixel moved the predicted digit's score (Integrated Gradients)

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))


class NoDigit(ValueError):
    """An input the page cannot show a net: no digit drawn, a file that is no image, ... (its message says which)."""


def sketch_pixels(sketch: dict[str, Any] | None) -> tuple[np.ndarray, str | None]:
    """The 28x28 uint8 digit of a sketchpad's value (its ``composite``, strokes on a transparent or white
    canvas), prepared as ``lab-cnn predict`` prepares a photo (lab_cnn.handwriting); and its warning or None."""
    composite = None if sketch is None else sketch.get("composite")
    if composite is None:
        raise NoDigit("Draw a digit on the canvas first.")
    image = Image.fromarray(np.asarray(composite, dtype=np.uint8))
    if image.mode in ("RGBA", "LA"):  # what is not drawn is transparent: it is paper, white
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    try:
        return mnist_style(image.convert("L"))
    except ValueError:
        raise NoDigit("The canvas is empty: draw a digit on it.") from None


def upload_pixels(path: str | Path | None) -> tuple[np.ndarray, str | None]:
    """The 28x28 uint8 digit of an uploaded image file (lab_cnn.handwriting.read_digit); and its warning."""
    if path is None:
        raise NoDigit("Upload a photo or a scan of a digit.")
    try:
        digit = read_digit(Path(path))
    except ValueError as e:  # named by the file's own name: the upload folder is the server's business
        why = str(e).replace(f" '{path}'", "").replace(str(path), Path(path).name)
        raise NoDigit(f"{Path(path).name}: not a digit image lab-cnn can read ({why}).") from None
    return digit.pixels, digit.warning


def as_input(pixels: np.ndarray, net: ExploredNet) -> Tensor:
    """The 1x28x28 float input of the net: the pixels normalized as its training data was."""
    return normalize(torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.uint8))[None], net.normalize)


def explain(net: ExploredNet, pixels: np.ndarray) -> Explained:
    """Every layer's output, the probabilities and the saliency of the predicted digit for one 28x28 digit:
    the model time of one update of the page (benchmarks/bench_explore.py times it)."""
    from captum.attr import IntegratedGradients

    x = as_input(pixels, net)
    layers = layer_outputs(net.model.net, x)
    probabilities = layers[-1].output.exp()  # the lab's nets end in log_softmax
    predicted = int(probabilities.argmax())
    blank = as_input(np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8), net)
    attributions = IntegratedGradients(net.model.net).attribute(
        x[None], baselines=blank[None], target=predicted, n_steps=INTEGRATION_STEPS
    )
    return Explained(probabilities.tolist(), layers, attributions.detach()[0, 0].abs().numpy())


def png(image: np.ndarray) -> str:
    """An image as a ``data:`` URL of a PNG: uint8 gray (H, W) or RGB (H, W, 3)."""
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def gray(image: Tensor) -> np.ndarray:
    """A (1, H, W) image in [0, 1] (lab_cnn.features.maps_image) as uint8 gray."""
    return (image[0].clamp(0, 1) * 255).round().byte().numpy()


def zoomed(pixels: np.ndarray, zoom: int = INPUT_ZOOM) -> np.ndarray:
    """An image (H, W) or (H, W, 3) with each pixel a ``zoom`` x ``zoom`` square."""
    return pixels.repeat(zoom, axis=0).repeat(zoom, axis=1)


def heat(values: np.ndarray) -> np.ndarray:
    """Values as an RGB heat map (matplotlib's inferno), the largest bright."""
    scaled = values / max(float(values.max()), 1e-12)
    return (colormaps["inferno"](scaled)[..., :3] * 255).round().astype(np.uint8)


def figure(caption: str, image: np.ndarray, kind: str, folded: bool = False) -> str:
    """A captioned image, shown twice its size (at most MAX_WIDTH) with sharp pixels; ``folded``: in a
    <details> the reader opens."""
    width = min(2 * image.shape[1], MAX_WIDTH)
    img = f'<img src="{png(image)}" alt="{escape(caption)}" width="{width}" style="image-rendering: pixelated">'
    if folded:
        return f'<details class="lab-{kind}"><summary>{escape(caption)}</summary>{img}</details>'
    return f'<figure class="lab-{kind}"><figcaption>{escape(caption)}</figcaption>{img}</figure>'


def explained_html(net: ExploredNet, explained: Explained) -> str:
    """The net's panel: the saliency map, then every layer's maps labelled with its shape (and for conv and
    pooling the lab's formula), each conv layer's kernels (ExploredNet.kernel_figures) after its maps."""
    digit = explained.predicted
    parts = [
        f"<h3>{escape(net.label)}: {digit} ({100 * explained.probabilities[digit]:.1f}%)</h3>",
        figure(
            f"saliency: which pixels made it a {digit} (Integrated Gradients)",
            zoomed(heat(explained.saliency)),
            "saliency",
        ),
    ]
    for layer in explained.layers:
        parts.append(figure(layer.caption, gray(maps_image([layer.output], columns=10)), "layer"))
        parts += [net.kernel_figures[layer.name]] if layer.name in net.kernel_figures else []
    return "\n".join(parts)


def probabilities_label(explained: Explained) -> dict[str, float]:
    """The 10 probabilities as Gradio's Label shows them: a bar each, the largest first."""
    return {str(d): explained.probabilities[d] for d in range(NUM_CLASSES)}
