"""The explorer's page (Gradio Blocks): a digit in, drawn, uploaded or from the test set; out, for each net,
its probabilities and every layer's maps (lab_cnn.explore.analysis draws them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np
import torch

from lab_cnn.explore.analysis import (
    ExploredNet,
    NoDigit,
    explain,
    explained_html,
    probabilities_label,
    sketch_pixels,
    upload_pixels,
    zoomed,
)
from lab_cnn.mnist import normalize

CANVAS = 280  # pixels: ten times MNIST's 28
BRUSH = 22  # pixels: MNIST's strokes are about a tenth of the image wide
NOTE = """Draw a digit with the mouse (or a finger), upload a photo of one, or pick a test image. For each net: its
probabilities, a saliency map (which pixels made the predicted digit, by Integrated Gradients), then every layer's
output in order, labelled with its shape and, for convolution and pooling, the lab's
`n_out = floor((n_in + 2p - k) / s) + 1`; each conv layer's kernels follow its maps. Dropout and BatchNorm
are in eval mode, as in a test."""


class Explorer:
    """What the page's events call: a digit in, the status line, the 28x28 seen and each net's outputs out."""

    def __init__(self, nets: list[ExploredNet], test_images: torch.Tensor, test_labels: torch.Tensor) -> None:
        self.nets, self.test_images, self.test_labels = nets, test_images, test_labels
        self.wrong: np.ndarray | None = None  # the test images the first net misclassifies, found on first use

    def outputs(self, pixels: np.ndarray, note: str) -> list[Any]:
        shown: list[Any] = [note, zoomed(pixels)]
        for net in self.nets:
            explained = explain(net, pixels)
            shown += [probabilities_label(explained), explained_html(net, explained)]
        return shown

    def refused(self, message: str) -> list[Any]:
        """The message in the status line; the other outputs cleared (the server goes on)."""
        return [f"**{message}**", None, *([None, ""] * len(self.nets))]

    def guarded(self, prepare: Callable[[], tuple[np.ndarray, str]]) -> list[Any]:
        try:
            pixels, note = prepare()
        except NoDigit as e:
            return self.refused(str(e))
        return self.outputs(pixels, note)

    def sketch(self, value: dict[str, Any] | None) -> list[Any]:
        return self.guarded(lambda: noted(*sketch_pixels(value), "your drawing"))

    def upload(self, path: str | None) -> list[Any]:
        return self.guarded(lambda: noted(*upload_pixels(path), "your image"))

    def test_image(self, index: float | None) -> list[Any]:
        return self.guarded(lambda: self.indexed(index))

    def indexed(self, index: float | None) -> tuple[np.ndarray, str]:
        count = len(self.test_labels)
        if index is None or not float(index).is_integer() or not 0 <= index < count:
            raise NoDigit(f"Give a test image index from 0 to {count - 1}.")
        i = int(index)
        return self.test_images[i, 0].numpy(), f"test image {i}: a {int(self.test_labels[i])}"

    def misclassified(self) -> list[Any]:
        """A random test image the first net gets wrong, and its index in the index box."""
        if self.wrong is None:
            self.wrong = misclassified(self.nets[0], self.test_images, self.test_labels)
        if not len(self.wrong):
            return [None, *self.refused(f"{self.nets[0].label} gets every test image right.")]
        index = int(np.random.default_rng().choice(self.wrong))
        return [index, *self.test_image(index)]


def noted(pixels: np.ndarray, warning: str | None, what: str) -> tuple[np.ndarray, str]:
    return pixels, f"{what}, as the net sees it" + (f" (warning: {warning})" if warning else "")


def misclassified(net: ExploredNet, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """The indices of the test images the net predicts wrongly."""
    with torch.no_grad():
        predicted = torch.cat(
            [net.model.net(normalize(batch, net.normalize)).argmax(1) for batch in images.split(1000)]
        )
    return (predicted != labels).nonzero()[:, 0].numpy()


def build_page(explorer: Explorer) -> gr.Blocks:
    with gr.Blocks(title="lab-cnn explore") as page:
        gr.Markdown("## lab-cnn explore: " + " | ".join(net.label for net in explorer.nets))
        gr.Markdown(NOTE)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                with gr.Tab("Draw"):
                    sketch = gr.Sketchpad(
                        canvas_size=(CANVAS, CANVAS),
                        fixed_canvas=True,
                        brush=gr.Brush(default_size=BRUSH, colors=["#000000"], color_mode="fixed"),
                        layers=False,
                        type="numpy",
                        label="Draw a digit",
                        elem_id="sketch",
                    )
                with gr.Tab("Upload"):
                    upload = gr.File(label="A photo or scan of a digit", elem_id="upload")
                with gr.Tab("Test image"):
                    index = gr.Number(label=f"Test image (0-{len(explorer.test_labels) - 1})", precision=0, value=0)
                    show = gr.Button("Show it")
                    wrong = gr.Button(f"A random one {explorer.nets[0].label} gets wrong")
                status = gr.Markdown(elem_id="status")
                seen = gr.Image(label="What the net sees: 28x28", format="png", interactive=False, elem_id="seen")
            outputs: list[Any] = [status, seen]
            for i, net in enumerate(explorer.nets):
                with gr.Column(scale=2):
                    outputs.append(gr.Label(num_top_classes=10, label=f"{net.label}: probabilities", elem_id=f"p{i}"))
                    outputs.append(gr.HTML(elem_id=f"layers{i}"))
        sketch.change(explorer.sketch, sketch, outputs, trigger_mode="always_last", api_name="sketch")
        upload.upload(explorer.upload, upload, outputs, api_name="upload")
        show.click(explorer.test_image, index, outputs, api_name="test_image")
        wrong.click(explorer.misclassified, None, [index, *outputs], api_name="misclassified")
    return page
