"""The GPU fast path: the Trainer callback :class:`StepsPerCall` (``configs/trainer/gpu.yaml`` adds it with 8
steps). Each Lightning training step takes K consecutive batches and makes one optimizer step per batch,
replayed from a CUDA graph on a GPU (:class:`lab_cnn.fast.step_block.StepBlock`). For these small nets the
host's per-step Python, not the GPU, sets the pace; K steps per call cut it K-fold. The steps are those of
K = 1, in the same order: on the CPU both give the same metrics (tests/test_steps.py).

How many steps a call takes is how the Trainer runs the model, not what the model is, so it is a callback of
the Trainer and not an argument of the model: the model's hyperparameters, checkpoint and training step are
the textbook ones (:class:`lab_cnn.module.Classifier`), which knows nothing of this module. For a fit the
callback takes the model's optimizer steps over (manual optimization) and has the data module serve chunks
of K batches; afterwards the model is as it was.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch.nn.functional as F
from torch import Tensor

from lab_cnn.errors import UserError
from lab_cnn.fast.step_block import StepBlock
from lab_cnn.validators import positive_int


class StepsPerCall(L.Callback):
    """K = ``steps`` optimizer steps (batches) per Lightning training step; more is faster on a GPU.

    On the command line: ``--trainer.callbacks+=lab_cnn.fast.StepsPerCall --trainer.callbacks.steps 8``.
    """

    def __init__(self, steps: int = 8) -> None:
        self.steps = positive_int("StepsPerCall steps", steps)

    def check_trainer_options(self, options: dict[str, Any]) -> None:
        """The Trainer options that count batches: counted as batches (optimizer steps) with K per call, or
        refused, where Lightning would count calls. :func:`lab_cnn.training.make_trainer` asks before the run
        claims its folder."""
        why = f"with StepsPerCall steps {self.steps} Lightning would count calls of {self.steps} optimizer steps"
        accumulate, clip = options.get("accumulate_grad_batches", 1), options.get("gradient_clip_val")
        if accumulate != 1 or clip not in (None, 0):  # Lightning's automatic optimization only
            key, value = ("accumulate_grad_batches", accumulate) if accumulate != 1 else ("gradient_clip_val", clip)
            raise UserError(
                f"trainer.{key}: {value!r} is not allowed with StepsPerCall steps {self.steps}: those steps are "
                "taken by lab-cnn, which Lightning's option cannot join; leave it out, or leave out StepsPerCall"
            )
        if options.get("max_steps") not in (None, -1):
            raise UserError(
                f"trainer.max_steps: {options['max_steps']} is not allowed: {why}; use max_epochs, or leave out "
                "StepsPerCall"
            )
        interval = options.get("val_check_interval")
        if interval not in (None, 1.0):
            raise UserError(
                f"trainer.val_check_interval: {interval!r} is not allowed: {why}; validate per epoch "
                "(check_val_every_n_epoch), or leave out StepsPerCall"
            )

    def setup(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        """For a fit: the model's training step becomes K optimizer steps on a chunk, and the data module (the
        lab's :class:`~lab_cnn.data.MNISTDataModule`) serves chunks of K batches, ``limit_train_batches``
        batches in all (it moves from the Trainer, which would count chunks, to the data module)."""
        if stage == "fit":
            data: Any = trainer.datamodule  # type: ignore[attr-defined]  # set at run time: the MNISTDataModule
            data.steps_per_call, data.train_batches_limit = self.steps, trainer.limit_train_batches
            trainer.limit_train_batches = 1.0  # every chunk served: the data module counted the batches
            self.multi_step = MultiStep(pl_module, self.steps)
            pl_module.automatic_optimization = False
            pl_module.training_step = self.multi_step.training_step  # the instance's, before the class's

    def teardown(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        """After a fit, the model, data module and Trainer as they were."""
        if stage == "fit":
            self.on_exception(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: Any, *_: Any) -> None:
        """The same after a fit that failed (Lightning calls no teardown then)."""
        if "training_step" in vars(pl_module):
            del pl_module.training_step  # the class's shows again
            # Lightning counts the steps of manual and automatic optimization apart: keep this fit's
            pl_module.trained_steps = trainer.global_step
            pl_module.automatic_optimization = True
            data: Any = trainer.datamodule  # type: ignore[attr-defined]  # set at run time: the MNISTDataModule
            trainer.limit_train_batches, data.train_batches_limit = data.train_batches_limit, None
            data.steps_per_call = 1


class MultiStep:
    """K optimizer steps per training step of ``module`` (a :class:`~lab_cnn.module.Classifier` under manual
    optimization): :meth:`training_step` takes a chunk of up to K batches."""

    def __init__(self, module: Any, steps: int) -> None:
        self.module = module
        self.block = StepBlock(self.optimizer_step, steps, lambda n: count_optimizer_steps(module.trainer, n))
        self.block.use_graph = module.trainer.world_size == 1 and module.trainer.precision != "16-mixed"

    def optimizer_step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One SGD step on a batch: its loss sum and predicted digits."""
        optimizer = self.module.optimizers()
        optimizer.zero_grad(set_to_none=False)  # the gradients keep their memory (a CUDA graph reuses it)
        log_probs = self.module(x)
        losses = F.nll_loss(log_probs.float(), y, reduction="none")
        self.module.manual_backward(losses.mean())
        optimizer.step()
        return losses.detach().sum(), log_probs.detach().argmax(1)

    def training_step(self, chunk: tuple[Tensor, Tensor, int], batch_idx: int) -> None:
        """The model's training step, K optimizer steps on a chunk ``(images, labels, batch_size)``; no loss
        is returned, as Lightning's manual optimization wants (the steps are taken)."""
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
