"""Several optimizer steps per Lightning training step, replayed from a CUDA graph on the GPU.

A GPU does an epoch of the lab's net in a fraction of the time the host takes to launch its kernels
one by one and to run Lightning's loop around every step. :class:`StepBlock` runs K steps (forward,
loss, backward, SGD update) on K consecutive batches as one call. On CUDA it captures those K steps
once as a CUDA graph and then replays it: one launch for K steps, inputs copied into static buffers.
Elsewhere, and for a chunk of another shape (the last of an epoch), the same steps run eagerly.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

# One step: images and labels in, the batch's loss sum and predicted digits out (parameters updated).
Step = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class StepBlock:
    """K training steps as one call: ``block(images, labels, batch_size)`` with ``len(images) <= K * batch_size``.

    Returns each step's loss sum (K values) and every image's predicted digit. On CUDA, the first
    full chunk runs eagerly on a side stream (the warm-up a capture needs), the second is captured as
    a graph, and every later full chunk replays it, then calls ``on_replay(K)`` (the steps of a
    replay run no Python, so whoever counts them is told). Dropout stays random: PyTorch's CUDA
    generator gives each replay new offsets. If the capture fails, one warning says so and the steps
    run eagerly from then on.
    """

    def __init__(self, step: Step, steps: int, on_replay: Callable[[int], None]) -> None:
        self.step, self.steps, self.on_replay = step, steps, on_replay
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warmed_up = False
        self.use_graph = True

    def __call__(self, x: Tensor, y: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
        full = len(x) == self.steps * batch_size
        if not (x.is_cuda and full and self.use_graph):
            return self.run(x, y, batch_size)
        if not self.warmed_up:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.run(x, y, batch_size)
            torch.cuda.current_stream().wait_stream(side)
            self.warmed_up = True
            return out
        if self.graph is None:
            try:
                self.capture(x, y, batch_size)
            except RuntimeError as e:
                warnings.warn(
                    f"CUDA graph capture failed, training eagerly instead ({str(e).splitlines()[0]})", stacklevel=2
                )
                self.use_graph = False
                torch.cuda.synchronize()
                return self.run(x, y, batch_size)
            self.graph.replay()  # type: ignore[attr-defined]  # capture() set it; the captured chunk's own steps
            return self.loss_sums, self.predicted
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        self.on_replay(self.steps)
        return self.loss_sums, self.predicted

    def run(self, x: Tensor, y: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
        """The steps, eagerly, one per batch of ``batch_size`` images."""
        outs = [self.step(xb, yb) for xb, yb in zip(x.split(batch_size), y.split(batch_size))]
        return torch.stack([loss for loss, _ in outs]), torch.cat([predicted for _, predicted in outs])

    def capture(self, x: Tensor, y: Tensor, batch_size: int) -> None:
        """Record the K steps on static copies of ``x`` and ``y``. Autocast's weight cache must be off
        while capturing (its casts would be recorded once and never redone)."""
        self.x, self.y = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        autocast = torch.is_autocast_enabled("cuda")
        dtype = torch.get_autocast_dtype("cuda")
        with torch.cuda.graph(graph), torch.autocast("cuda", dtype=dtype, enabled=autocast, cache_enabled=False):
            self.loss_sums, self.predicted = self.run(self.x, self.y, batch_size)
        self.graph = graph
