"""The GPU fast path, ``--model.steps_per_call K`` with K > 1 (``configs/trainer/gpu.yaml`` sets 8): each
Lightning training step takes K consecutive batches and makes one optimizer step per batch, replayed from a
CUDA graph on a GPU (:class:`lab_cnn.fast.step_block.StepBlock`). For these small nets the host's per-step Python,
not the GPU, sets the pace; K steps per call cut it K-fold. The steps are those of K = 1, in the same order:
on the CPU both give the same metrics (tests/test_steps.py).

Only a model with K > 1 uses this module; the textbook path (:class:`lab_cnn.module.Classifier` with K = 1)
does not touch it.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch.nn.functional as F
from torch import Tensor

from lab_cnn.errors import UserError
from lab_cnn.fast.step_block import StepBlock


class MultiStep:
    """K optimizer steps per training step of ``module`` (a :class:`~lab_cnn.module.Classifier` with manual
    optimization): ``multi_step((images, labels, batch_size))`` for a chunk of up to K batches."""

    def __init__(self, module: Any) -> None:
        self.module = module
        trainer = module.trainer
        self.block = StepBlock(self.optimizer_step, module.steps_per_call, lambda n: count_optimizer_steps(trainer, n))
        self.block.use_graph = trainer.world_size == 1 and trainer.precision != "16-mixed"

    def optimizer_step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One SGD step on a batch: its loss sum and predicted digits."""
        optimizer = self.module.optimizers()
        optimizer.zero_grad(set_to_none=False)  # the gradients keep their memory (a CUDA graph reuses it)
        log_probs = self.module(x)
        losses = F.nll_loss(log_probs.float(), y, reduction="none")
        self.module.manual_backward(losses.mean())
        optimizer.step()
        return losses.detach().sum(), log_probs.detach().argmax(1)

    def __call__(self, chunk: tuple[Tensor, Tensor, int]) -> None:
        x, y, batch_size = chunk
        first_step = self.module.global_step + 1
        loss_sums, predicted = self.block(x, y, batch_size)
        self.module.record_train_steps(loss_sums, predicted, y, first_step)


def count_optimizer_steps(trainer: L.Trainer, steps: int) -> None:
    """Tell Lightning that ``steps`` optimizer steps were taken outside its optimizer wrapper (a CUDA
    graph replay), so ``global_step`` counts every optimizer step. Lightning has no public call for
    this: it reads the manual-optimization progress (tests/test_steps.py fails if that changes)."""
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    for _ in range(steps):
        progress.increment_ready()
        progress.increment_completed()


def check_trainer_options(options: dict[str, Any], steps: int, data: Any) -> None:
    """The Trainer options that count batches, made to count batches (optimizer steps) with K per call, or
    refused: Lightning would count calls. ``limit_train_batches`` moves from the Trainer's ``options`` to the
    data module (``data.train_batches_limit``), which serves that many batches in chunks of K."""
    why = f"with model.steps_per_call {steps} Lightning would count calls of {steps} optimizer steps"
    accumulate, clip = options.get("accumulate_grad_batches", 1), options.get("gradient_clip_val")
    if accumulate != 1 or clip not in (None, 0):  # Lightning's automatic optimization only
        key, value = ("accumulate_grad_batches", accumulate) if accumulate != 1 else ("gradient_clip_val", clip)
        raise UserError(
            f"trainer.{key}: {value!r} is not allowed with model.steps_per_call {steps}: those steps are taken "
            "by lab-cnn, which Lightning's option cannot join; leave it out, or use steps_per_call 1"
        )
    if options.get("max_steps") not in (None, -1):
        raise UserError(
            f"trainer.max_steps: {options['max_steps']} is not allowed: {why}; use max_epochs, or steps_per_call 1"
        )
    interval = options.get("val_check_interval")
    if interval not in (None, 1.0):
        raise UserError(
            f"trainer.val_check_interval: {interval!r} is not allowed: {why}; validate per epoch "
            "(check_val_every_n_epoch), or use steps_per_call 1"
        )
    data.train_batches_limit = options.pop("limit_train_batches", None)
