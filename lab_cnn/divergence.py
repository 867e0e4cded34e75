"""The watch for a training loss that turns NaN or infinite, which stops a run at the step it happened
(:meth:`lab_cnn.module.Classifier.stop_if_diverged`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class LossWatch:
    """Finds the first step whose loss is NaN or infinite, without making a GPU wait.

    ``watch(loss_sums, first_step)`` looks at a chunk's per-step loss sums. On the CPU it answers at
    once; on a GPU it copies a flag per step to pinned host memory when the chunk finishes and answers
    for it at the next call (or at ``flush``), so the chunk in flight is never waited for.
    Returns ``(step, value)`` of the first bad step found, or None.
    """

    def __init__(self) -> None:
        # the pinned flags and their event, made at the first CUDA chunk
        self.flags: Any = None
        self.event: Any = None
        self.pending: tuple[int, int, Tensor] | None = None  # first step, steps, loss sums of the chunk in flight

    def watch(self, loss_sums: Tensor, first_step: int) -> tuple[int, float] | None:
        if not loss_sums.is_cuda:
            return self.first_bad(first_step, ~torch.isfinite(loss_sums), loss_sums)
        found = self.flush()
        if self.flags is None or len(self.flags) < len(loss_sums):
            self.flags, self.event = torch.empty(len(loss_sums), dtype=torch.bool, pin_memory=True), torch.cuda.Event()
        self.flags[: len(loss_sums)].copy_(~torch.isfinite(loss_sums), non_blocking=True)
        self.event.record()
        self.pending = (first_step, len(loss_sums), loss_sums)
        return found

    def flush(self) -> tuple[int, float] | None:
        """The answer for the chunk in flight, waiting for it if need be."""
        if self.pending is None:
            return None
        first_step, steps, loss_sums = self.pending
        self.pending = None
        self.event.synchronize()
        return self.first_bad(first_step, self.flags[:steps], loss_sums)

    @staticmethod
    def first_bad(first_step: int, bad: Tensor, loss_sums: Tensor) -> tuple[int, float] | None:
        if not bad.any():
            return None
        i = int(bad.nonzero()[0])
        return first_step + i, float(loss_sums[i])
