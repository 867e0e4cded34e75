"""The timing callback of case (a), added to a real ``lab-cnn fit`` on its command line."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from benchmarks.timing import clock, write_result


class LoopTimer(Callback):
    """Times the training epochs of a ``lab-cnn fit`` (not its validation or test), counts the images they
    trained on, and writes ``loop_s``, ``images`` and ``test_acc`` to ``path`` after the test.

    Added on the command line: ``--trainer.callbacks+=benchmarks.loop_timer.LoopTimer --trainer.callbacks.path F``.
    """

    def __init__(self, path: str) -> None:
        self.path, self.loop_s, self.images = path, 0.0, 0
        self.started: float | None = None

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started = clock(pl_module.device)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.images += len(batch[0])

    def _stop(self, pl_module: LightningModule) -> None:
        if self.started is not None:
            self.loop_s += clock(pl_module.device) - self.started
            self.started = None

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop(pl_module)  # validation at the end of an epoch is not training

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._stop(pl_module)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        write_result(
            self.path, loop_s=self.loop_s, images=self.images, test_acc=float(trainer.callback_metrics["test/acc"])
        )
